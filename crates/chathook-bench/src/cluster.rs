//! `cluster`: the three-node drill. A throwaway PostgreSQL and nats-server (`chathook-testkit`), three
//! nodes as processes, N messages through the REST API spread over the nodes (`drill::flood`: a
//! client whose node stops answering moves to the next), and `kill -9` of the node delivering to the
//! webhook endpoint half way. Then every acknowledged message's event must reach the receiver and be in
//! history; it prints messages/s, deliveries/s and the takeover time (from the kill to the first
//! delivery by another node).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::drill::{check_history, flood, wait_delivered};
use crate::harness::{post, start_server_in, start_sink_with, Server, SinkOptions};
use crate::Figures;

/// The node holding the endpoint's lease.
async fn lease_holder(db: &tokio_postgres::Client, endpoint: &str) -> Option<i32> {
    db.query_opt(
        "SELECT node_id FROM leases WHERE name = $1",
        &[&format!("webhook:{endpoint}")],
    )
    .await
    .ok()
    .flatten()
    .map(|r| r.get(0))
}

pub async fn cluster(bin: &Path, n: u64, lease_ms: u64) -> anyhow::Result<Vec<Figures>> {
    let pg = crate::services::postgres(false)?;
    let url = pg.database("drill").map_err(|e| anyhow::anyhow!("{e}"))?;
    let nats = crate::services::nats()?;
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let ids = Arc::new(Mutex::new(HashSet::new()));
    let sink = start_sink_with(SinkOptions {
        ids: Some(ids.clone()),
        ..Default::default()
    })
    .await?;
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    let mut nodes: Vec<Option<Server>> = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let env = [
            ("CHATHOOK_NODE_ID", (i + 1).to_string()),
            ("CHATHOOK_STORAGE__BACKEND", "postgres".to_string()),
            (
                "CHATHOOK_SECRETS__KEY",
                crate::harness::SECRETS_KEY.to_string(),
            ),
            ("CHATHOOK_STORAGE__POSTGRES_URL", url.clone()),
            (
                "CHATHOOK_STORAGE__POSTGRES_MAX_CONNECTIONS",
                "8".to_string(),
            ),
            ("CHATHOOK_CLUSTER__NATS_URL", nats.url()),
            ("CHATHOOK_CLUSTER__LEASE_MS", lease_ms.to_string()),
            ("CHATHOOK_CLUSTER__NODE_TIMEOUT_MS", lease_ms.to_string()),
            (
                "CHATHOOK_CLUSTER__HEARTBEAT_MS",
                (lease_ms / 6).max(1).to_string(),
            ),
        ];
        nodes.push(Some(start_server_in(bin, dir.path(), &env).await?));
    }
    let apis: Arc<Vec<String>> = Arc::new(nodes.iter().flatten().map(|s| s.api.clone()).collect());
    let http = reqwest::Client::new();
    let endpoint = post(
        &http,
        &apis[0],
        "/v1/webhooks/endpoints",
        json!({"url": sink.url, "events": ["message.sent"]}),
    )
    .await?;
    let endpoint = endpoint["id"]
        .as_str()
        .context("no endpoint id")?
        .to_string();
    let started = Instant::now();
    let holder = loop {
        if let Some(node) = lease_holder(&db, &endpoint).await {
            break node;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("no node took the endpoint's lease");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let started = Instant::now();
    let flooding = tokio::spawn(flood(apis.clone(), 0, n));
    while ids.lock().map(|s| s.len() as u64).unwrap_or(0) < n / 2 {
        if flooding.is_finished() {
            bail!("the run ended before half the messages were delivered");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed = nodes[holder as usize - 1]
        .as_ref()
        .context("the holder is a node of this drill")?;
    std::process::Command::new("kill")
        .args(["-9", &killed.child.id().to_string()])
        .status()?;
    let killed_at = Instant::now();
    // Requests the killed node had in flight may still land for a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = sink.requests.load(Ordering::Relaxed);
    let takeover = loop {
        if sink.requests.load(Ordering::Relaxed) > before {
            break killed_at.elapsed();
        }
        if killed_at.elapsed() > Duration::from_millis(lease_ms * 4 + 10_000) {
            bail!("no node took the endpoint over");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let new_holder = lease_holder(&db, &endpoint).await;
    let acked = flooding.await?;
    let sent_in = started.elapsed();
    nodes[holder as usize - 1] = None;
    wait_delivered(&ids, &acked, Duration::from_secs(120)).await?;
    let delivered_in = started.elapsed();
    let survivor = nodes.iter().flatten().next().context("a node survives")?;
    check_history(&survivor.api, &acked).await?;
    let acked_n = acked.len() as u64;
    println!(
        "cluster drill: 3 nodes, {acked_n} acknowledged messages, node {holder} (the endpoint's) killed with -9 half way, \
         node {new_holder:?} took over in {:.2} s (lease {lease_ms} ms); every message delivered and in history",
        takeover.as_secs_f64()
    );
    Ok(vec![
        Figures::new(
            "cluster drill: messages/s (3 nodes)",
            acked_n as f64 / sent_in.as_secs_f64(),
            None,
            None,
            acked_n,
        ),
        Figures::new(
            "cluster drill: deliveries/s",
            acked.len() as f64 / delivered_in.as_secs_f64(),
            None,
            None,
            acked.len() as u64,
        ),
        Figures::new(
            "cluster drill: takeover ms",
            takeover.as_secs_f64() * 1000.0,
            None,
            None,
            1,
        ),
    ])
}
