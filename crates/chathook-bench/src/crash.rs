//! `crash`: the crash drill at full size. N messages through the REST API with every event going to a
//! receiver; kill -9 at half way; restart; the rest; then every acknowledged message's event must have
//! reached the receiver and every acknowledged message must be in history.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::drill::{check_history, flood, wait_delivered};
use crate::harness::{post, start_server_in, start_sink_with, SinkOptions};
use crate::Figures;

pub async fn crash(bin: &Path, n: u64) -> anyhow::Result<Vec<Figures>> {
    let ids = Arc::new(Mutex::new(HashSet::new()));
    let sink = start_sink_with(SinkOptions {
        ids: Some(ids.clone()),
        ..Default::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let server = start_server_in(bin, dir.path(), &[]).await?;
    let http = reqwest::Client::new();
    post(
        &http,
        &server.api,
        "/v1/webhooks/endpoints",
        json!({"url": sink.url, "events": ["message.sent"]}),
    )
    .await?;
    let api = Arc::new(vec![server.api.clone()]);
    let half = n / 2;
    let first = tokio::spawn(flood(api, 0, n));
    // kill -9 once about half the messages are acknowledged
    let started = Instant::now();
    while ids.lock().map(|s| s.len() as u64).unwrap_or(0) < half / 2
        && started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = server.child.id();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    let mut acked = first.await?;
    drop(server);
    let server = start_server_in(bin, dir.path(), &[]).await?;
    let killed_at = acked.len() as u64;
    let api = Arc::new(vec![server.api.clone()]);
    acked.extend(flood(api, n, n + (n - killed_at.min(n))).await);
    wait_delivered(&ids, &acked, Duration::from_secs(90)).await?;
    check_history(&server.api, &acked).await?;
    println!("crash drill: {} acknowledged messages ({killed_at} before kill -9), all delivered and in history", acked.len());
    Ok(vec![Figures::new(
        "crash drill: acknowledged, all delivered",
        acked.len() as f64,
        None,
        None,
        acked.len() as u64,
    )])
}
