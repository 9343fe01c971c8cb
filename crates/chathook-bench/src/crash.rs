//! `crash`: the crash drill at full size. N messages through the REST API with every event going to a
//! receiver; kill -9 at half way; restart; the rest; then every acknowledged message's event must have
//! reached the receiver and every acknowledged message must be in history.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use crate::harness::{post, start_server_in, start_sink_with, SinkOptions};
use crate::Figures;

async fn flood(api: &str, from: u64, to: u64) -> Vec<(String, i64, u64)> {
    let mut tasks = Vec::new();
    let clients = 32u64;
    for c in 0..clients {
        let api = api.to_string();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acked = Vec::new();
            let mut i = from + c;
            while i < to {
                let channel = format!("b{}", i % 64);
                let body = json!({"from_uid": "a", "channel_id": channel, "channel_type": 1,
                                  "client_msg_no": format!("m{i}"), "payload": "e30="});
                match post(&http, &api, "/message/send", body).await {
                    Ok(v) if v["status"] == 200 => acked.push((
                        channel,
                        v["data"]["message_id"].as_i64().unwrap_or(0),
                        v["data"]["message_seq"].as_u64().unwrap_or(0),
                    )),
                    _ => break,
                }
                i += clients;
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all
}

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
    let api = server.api.clone();
    let half = n / 2;
    let first = tokio::spawn(async move { flood(&api, 0, n).await });
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
    acked.extend(flood(&server.api, n, n + (n - killed_at.min(n))).await);
    let wanted: HashSet<i64> = acked.iter().map(|a| a.1).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = ids
            .lock()
            .map(|s| wanted.iter().filter(|i| s.contains(i)).count())
            .unwrap_or(0);
        if got == wanted.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {} acknowledged messages never reached the receiver",
                wanted.len() - got,
                wanted.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // history: every acknowledged seq is stored
    let mut missing = 0;
    for c in 0..64 {
        let channel = format!("b{c}");
        let page = post(
            &http,
            &server.api,
            "/channel/messagesync",
            json!({"login_uid": "a", "channel_id": channel,
            "channel_type": 1, "start_message_seq": 1, "limit": 10000, "pull_mode": 1}),
        )
        .await?;
        let stored: HashSet<u64> = page["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["message_seq"].as_u64()).collect())
            .unwrap_or_default();
        missing += acked
            .iter()
            .filter(|a| a.0 == channel && !stored.contains(&a.2))
            .count();
    }
    if missing > 0 {
        bail!("{missing} acknowledged messages are missing from history");
    }
    println!("crash drill: {} acknowledged messages ({killed_at} before kill -9), all delivered and in history", acked.len());
    Ok(vec![Figures::new(
        "crash drill: acknowledged, all delivered",
        acked.len() as f64,
        None,
        None,
        acked.len() as u64,
    )])
}
