//! `relay`: WuKongIM-style `msg.notify` batches of 100 posted into a relay source's ingest URL by
//! concurrent senders, delivered as unbatched standard webhooks: relayed messages per second end to
//! end and the ingest answer's latency (it comes after the durable commit), beside the bare POST loop.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::harness::{percentile, post, rate_until, start_server, start_sink};
use crate::webhooks::bare_loop;
use crate::Figures;

/// Messages in one `msg.notify` POST, as WuKongIM's `msgNotifyEventCountPerPush` default.
const BATCH: i64 = 100;
/// Concurrent senders (WuKongIM posts from one loop; several sources or nodes post at once).
const SENDERS: i64 = 8;

/// One batch of WuKongIM's `MessageResp`s with ids from `first`.
fn batch(first: i64) -> bytes::Bytes {
    let payload =
        base64::engine::general_purpose::STANDARD.encode(r#"{"type":1,"content":"bench"}"#);
    let items: Vec<Value> = (first..first + BATCH)
        .map(|id| {
            json!({"header": {"no_persist": 0, "red_dot": 1, "sync_once": 0}, "setting": 0,
                   "message_id": id, "message_idstr": id.to_string(), "client_msg_no": format!("c{id}"),
                   "message_seq": id, "from_uid": "a", "channel_id": "g", "channel_type": 2,
                   "expire": 0, "timestamp": 1_700_000_000, "payload": payload})
        })
        .collect();
    bytes::Bytes::from(Value::Array(items).to_string())
}

pub async fn relay(bin: &Path, seconds: u64) -> anyhow::Result<Vec<Figures>> {
    let sink = start_sink().await?;
    let bare = bare_loop(&sink.url, &sink.requests, seconds).await?;
    let server = start_server(bin, &[]).await?;
    let http = reqwest::Client::new();
    post(&http, &server.api, "/v1/webhooks/endpoints",
        json!({"url": sink.url, "flavour": "standard", "events": ["message.sent"], "max_in_flight": 64})).await?;
    let source = post(
        &http,
        &server.api,
        "/v1/relay/sources",
        json!({"kind": "wukongim"}),
    )
    .await?;
    let ingest = format!(
        "{}?event=msg.notify",
        source["ingest_url"].as_str().unwrap_or_default()
    );
    let url = reqwest::Url::parse(&ingest)?;
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let before = sink.requests.load(Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (url, latencies) = (url.clone(), latencies.clone());
        senders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut sent = 0u64;
            let mut next = 1 + s * 1_000_000_000;
            while Instant::now() < deadline {
                let body = batch(next);
                next += BATCH;
                let t = Instant::now();
                let answer = http
                    .post(url.clone())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().as_u16() == 200 => {
                        let _ = r.bytes().await;
                        if let Ok(mut l) = latencies.lock() {
                            l.push(t.elapsed().as_micros() as u64);
                        }
                        sent += BATCH as u64;
                    }
                    _ => break,
                }
            }
            sent
        }));
    }
    let mut total = 0;
    for s in senders {
        total += s.await?;
    }
    let ingest_rate = total as f64 / started.elapsed().as_secs_f64();
    let (_, delivered) = rate_until(&sink.requests, before, total, Duration::from_secs(120)).await;
    let end_to_end = delivered as f64 / started.elapsed().as_secs_f64();
    let mut l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_unstable();
    let ms = |p| percentile(&l, p);
    Ok(vec![
        Figures::new("relay bare POST loop (limit)", bare, None, None, 0),
        Figures::new(
            "relay ingest msgs/s (msg.notify of 100)",
            ingest_rate,
            ms(0.5),
            ms(0.99),
            total,
        ),
        Figures::new(
            "relay delivered msgs/s (end to end)",
            end_to_end,
            None,
            None,
            delivered,
        ),
    ])
}
