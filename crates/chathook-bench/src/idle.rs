//! `idle`: server memory with 10k, 25k and 50k idle authenticated WebSocket connections (from several
//! 127.0.0.x source addresses, with the open-file limit raised).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::harness::{connect, start_server, token, Ws};
use crate::Figures;

pub async fn idle(bin: &Path, steps: &[usize]) -> anyhow::Result<Vec<Figures>> {
    let most = steps.iter().copied().max().unwrap_or(0);
    // Both ends of every connection live on this machine: raise the open-file limit (root may raise the
    // hard limit too; the server inherits it), and stop where it ends.
    let want = most as u64 + 1_000;
    let limit = match rlimit::setrlimit(rlimit::Resource::NOFILE, want, want) {
        Ok(()) => want,
        Err(_) => rlimit::increase_nofile_limit(want)?,
    };
    // Each process holds one end of each connection, so each needs one descriptor per connection.
    let reachable = limit.saturating_sub(1_000) as usize;
    let mut steps: Vec<usize> = steps.iter().copied().filter(|s| *s <= reachable).collect();
    if steps.last().is_none_or(|last| *last < most) {
        println!(
            "idle: the open-file limit here is {limit}; measuring up to {reachable} connections"
        );
        steps.push(reachable.min(most));
    }
    let steps = &steps[..];
    let per_user = 100usize;
    let server = start_server(
        bin,
        &[
            (
                "CHATHOOK_LIMITS__CONNECTIONS_PER_USER",
                per_user.to_string(),
            ),
            (
                "CHATHOOK_LIMITS__MAX_CONNECTIONS",
                (most + 1000).to_string(),
            ),
            ("CHATHOOK_GATEWAY__HEARTBEAT_TIMEOUT_MS", "600000".into()),
        ],
    )
    .await?;
    let http = reqwest::Client::new();
    let users = most.div_ceil(per_user);
    for u in 0..users {
        token(&http, &server.api, &format!("idle{u}")).await?;
    }
    let baseline = server.rss_bytes();
    let mut out = vec![Figures::new(
        "idle server RSS MiB, 0 connections",
        baseline as f64 / 1048576.0,
        None,
        None,
        0,
    )];
    let mut held: Vec<Ws> = Vec::with_capacity(most);
    let gate = Arc::new(Semaphore::new(256));
    for &step in steps {
        let mut tasks = Vec::new();
        for n in held.len()..step {
            let ws = server.ws.clone();
            let gate = gate.clone();
            // 20k connections per source address keeps clear of the ephemeral port range.
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (n / 20_000) as u8));
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire().await;
                connect(&ws, &format!("idle{}", n / per_user), Some(source)).await
            }));
        }
        for t in tasks {
            held.push(t.await??);
        }
        eprintln!("idle: {} connections", held.len());
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let rss = server.rss_bytes();
        out.push(Figures::new(
            "idle server RSS MiB (total = connections)",
            rss as f64 / 1048576.0,
            None,
            None,
            held.len() as u64,
        ));
    }
    Ok(out)
}
