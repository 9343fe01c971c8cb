//! Webhook scenarios: unbatched deliveries beside a bare keep-alive POST loop (the physical limit), the
//! durable path end to end (REST sends to offline users, one msg.offline POST each), messages through
//! msg.notify, and isolation from a slow endpoint.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::chat::{self, Sender};
use crate::harness::{
    cpu_micros, patch, percentile, post, rate_until, start_server, start_sink, start_sink_with,
    token, Server, SinkOptions, ADMIN,
};
use crate::Figures;

/// Requests per second of a bare keep-alive POST loop (64 clients) to `url`.
pub async fn bare_loop(
    url: &str,
    requests: &std::sync::atomic::AtomicU64,
    seconds: u64,
) -> anyhow::Result<f64> {
    let body =
        r#"{"type":"message.sent","timestamp":"2026-01-01T00:00:00.000Z","data":{"message_id":1}}"#;
    let span = Duration::from_secs(seconds.clamp(1, 5));
    let deadline = Instant::now() + span;
    let before = requests.load(Ordering::Relaxed);
    let mut loops = Vec::new();
    for _ in 0..64 {
        let url = url.to_string();
        loops.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while Instant::now() < deadline {
                if http.post(&url).body(body).send().await.is_err() {
                    break;
                }
            }
        }));
    }
    for l in loops {
        l.await?;
    }
    Ok((requests.load(Ordering::Relaxed) - before) as f64 / span.as_secs_f64())
}

/// Sends `n` messages through the REST API with `clients` keep-alive clients, client `i` from `a{i}`
/// to `b{i}` (nobody is connected, so each message is also a message.offline event). Each client
/// builds its body and URL once and reads only the status of each answer, so that the load generator,
/// which shares the two cores with the server, costs as little as it can.
async fn queue_messages(server: &Server, n: u64, clients: u64) -> anyhow::Result<u64> {
    let payload =
        base64::engine::general_purpose::STANDARD.encode(r#"{"type":1,"content":"bench"}"#);
    let url = reqwest::Url::parse(&format!("{}/message/send", server.api))?;
    let per_task = n / clients;
    let mut tasks = Vec::new();
    for i in 0..clients {
        let body = bytes::Bytes::from(
            json!({"from_uid": format!("a{i}"), "channel_id": format!("b{i}"), "channel_type": 1, "payload": payload})
                .to_string(),
        );
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for _ in 0..per_task {
                let sent = http
                    .post(url.clone())
                    .header("token", ADMIN)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => break,
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(per_task * clients)
}

async fn enable(server: &Server, endpoint: &Value) -> anyhow::Result<()> {
    let id = endpoint["id"].as_str().unwrap_or_default();
    let path = format!("/v1/webhooks/endpoints/{id}");
    patch(
        &reqwest::Client::new(),
        &server.api,
        &path,
        json!({"enabled": true}),
    )
    .await
}

/// `webhook`: the bare loop, then `events` queued message.sent events drained by one standard endpoint.
/// Filters that every benchmark message passes, each still evaluated (`--filters`): the channel type,
/// and the payload's JSON `type`, which is parsed for each message.
pub fn passing_filters() -> Value {
    json!({"channel_types": [1, 2], "payload_types": [1]})
}

/// `body` with `filters` when given.
fn with_filters(mut body: Value, filters: &Option<Value>) -> Value {
    if let Some(f) = filters {
        body["filters"] = f.clone();
    }
    body
}

pub async fn unbatched(
    bin: &Path,
    seconds: u64,
    events: u64,
    filters: &Option<Value>,
) -> anyhow::Result<Vec<Figures>> {
    let sink = start_sink().await?;
    let bare = bare_loop(&sink.url, &sink.requests, seconds).await?;
    let server = start_server(bin, &[]).await?;
    let http = reqwest::Client::new();
    let ep = post(&http, &server.api, "/v1/webhooks/endpoints",
        with_filters(json!({"url": sink.url, "flavour": "standard", "events": ["message.sent"], "enabled": false, "max_in_flight": 64}), filters)).await?;
    let total = queue_messages(&server, events, 32).await?;
    let before = sink.requests.load(Ordering::Relaxed);
    enable(&server, &ep).await?;
    let (rate, done) = rate_until(&sink.requests, before, total, Duration::from_secs(100)).await;
    println!(
        "unbatched deliveries run at 1/{:.2} of the bare keep-alive loop (target: within 3x)",
        bare / rate.max(1.0)
    );
    Ok(vec![
        Figures::new("webhook bare POST loop (limit)", bare, None, None, 0),
        Figures::new("webhook unbatched deliveries", rate, None, None, done),
    ])
}

/// The store writer's thread (SQLite's), whose CPU `offline` reports apart.
const WRITER_THREAD: &str = "chathook-writer";

/// `offline`: the durable path end to end, as a backend and its push service see it: 64 keep-alive
/// clients POST `/message/send` to users who are offline, and each message becomes one msg.offline POST
/// to a loopback receiver. The rate is deliveries over the time from the first send to the last delivery;
/// the bare POST loop to the same receiver is measured in the same run.
pub async fn offline(bin: &Path, seconds: u64, events: u64) -> anyhow::Result<Vec<Figures>> {
    let sink = start_sink().await?;
    let bare = bare_loop(&sink.url, &sink.requests, seconds).await?;
    let server = start_server(bin, &[]).await?;
    let http = reqwest::Client::new();
    post(&http, &server.api, "/v1/webhooks/endpoints",
        json!({"url": sink.url, "flavour": "wukongim", "events": ["msg.offline"], "max_in_flight": 64})).await?;
    let before = sink.requests.load(Ordering::Relaxed);
    let (cpu_before, own_cpu_before) = (server.cpu_micros(), cpu_micros("/proc/self/stat"));
    let writer_before = server.thread_cpu_micros(WRITER_THREAD);
    let start = Instant::now();
    let total = queue_messages(&server, events, 64).await?;
    let sent_in = start.elapsed();
    let limit = Duration::from_secs(120);
    while sink.requests.load(Ordering::Relaxed) - before < total && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = sink.requests.load(Ordering::Relaxed) - before;
    let rate = done as f64 / start.elapsed().as_secs_f64();
    let cpu_per_message = (server.cpu_micros() - cpu_before) as f64 / done.max(1) as f64;
    let own_per_message =
        (cpu_micros("/proc/self/stat") - own_cpu_before) as f64 / done.max(1) as f64;
    let writer_per_message =
        (server.thread_cpu_micros(WRITER_THREAD) - writer_before) as f64 / done.max(1) as f64;
    println!(
        "durable path: {done} of {total} messages delivered as msg.offline, sends took {:.1} s; \
         1/{:.2} of the bare keep-alive loop (target: >= 20,000 msgs/s); \
         CPU per message: {cpu_per_message:.0} µs in the server ({writer_per_message:.0} µs of it \
         in the store's writer thread), {own_per_message:.0} µs in this load generator and receiver",
        sent_in.as_secs_f64(),
        bare / rate.max(1.0)
    );
    Ok(vec![
        Figures::new("offline bare POST loop (limit)", bare, None, None, 0),
        Figures::new(
            "offline REST send to msg.offline, end to end",
            rate,
            None,
            None,
            done,
        ),
        Figures::new(
            "offline server CPU per message (µs)",
            cpu_per_message.round(),
            None,
            None,
            done,
        ),
        Figures::new(
            "offline writer thread CPU per message (µs)",
            writer_per_message.round(),
            None,
            None,
            done,
        ),
        Figures::new(
            "offline load generator CPU per message (µs)",
            own_per_message.round(),
            None,
            None,
            done,
        ),
    ])
}

/// `notify`: `events` queued messages drained through msg.notify batches.
pub async fn notify(bin: &Path, events: u64, filters: &Option<Value>) -> anyhow::Result<Figures> {
    let sink = start_sink().await?;
    let server = start_server(bin, &[]).await?;
    let http = reqwest::Client::new();
    let ep = post(
        &http,
        &server.api,
        "/v1/webhooks/endpoints",
        with_filters(
            json!({"url": sink.url, "flavour": "wukongim", "events": ["msg.notify"], "enabled": false}),
            filters,
        ),
    )
    .await?;
    let total = queue_messages(&server, events, 32).await?;
    let before = sink.messages.load(Ordering::Relaxed);
    enable(&server, &ep).await?;
    let (rate, done) = rate_until(&sink.messages, before, total, Duration::from_secs(100)).await;
    Ok(Figures::new(
        "webhook msg.notify messages",
        rate,
        None,
        None,
        done,
    ))
}

/// One isolation run: chat load with a healthy endpoint, and a slow one when `slow`.
/// One isolation run: chat load with a healthy endpoint, and a slow one when `slow`. Unpaced, it
/// measures chat throughput; paced (`pace` between sends of each of 16 senders), the healthy endpoint's
/// delivery latency at a rate it sustains.
async fn isolation_run(
    bin: &Path,
    seconds: u64,
    slow: bool,
    pace: Option<Duration>,
) -> anyhow::Result<(f64, Option<f64>, Option<f64>)> {
    let epoch = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let healthy = start_sink_with(SinkOptions {
        latencies: Some(latencies.clone()),
        epoch: Some(epoch),
        ..Default::default()
    })
    .await?;
    let server = start_server(bin, &[]).await?;
    let http = reqwest::Client::new();
    post(
        &http,
        &server.api,
        "/v1/webhooks/endpoints",
        json!({"url": healthy.url, "events": ["message.sent"]}),
    )
    .await?;
    let _slow_sink = if slow {
        let sink = start_sink_with(SinkOptions {
            delay: Duration::from_secs(10),
            ..Default::default()
        })
        .await?;
        post(
            &http,
            &server.api,
            "/v1/webhooks/endpoints",
            json!({"url": sink.url, "events": ["message.sent"], "timeout_ms": 15000}),
        )
        .await?;
        Some(sink)
    } else {
        None
    };
    for i in 0..16 {
        token(&http, &server.api, &format!("s{i}")).await?;
        token(&http, &server.api, &format!("r{i}")).await?;
    }
    let senders = (0..16)
        .map(|i| Sender {
            uid: format!("s{i}"),
            channel_id: format!("r{i}"),
            channel_type: 1,
        })
        .collect();
    let receivers = (0..16).map(|i| format!("r{i}")).collect();
    let load = chat::Load {
        epoch,
        pace,
        ..chat::Load::new(seconds, 16)
    };
    let (rate, _, _, _) = chat::run(&server, senders, receivers, load).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_unstable();
    Ok((rate, percentile(&l, 0.5), percentile(&l, 0.99)))
}

/// `isolation`: chat throughput and a healthy endpoint's latency, without and with an endpoint that
/// answers after 10 s.
pub async fn isolation(bin: &Path, seconds: u64) -> anyhow::Result<Vec<Figures>> {
    let paced = Some(Duration::from_millis(10)); // 16 senders x 100/s
    let (alone_rate, _, _) = isolation_run(bin, seconds, false, None).await?;
    let (with_rate, _, _) = isolation_run(bin, seconds, true, None).await?;
    let (_, alone_p50, alone_p99) = isolation_run(bin, seconds, false, paced).await?;
    let (_, with_p50, with_p99) = isolation_run(bin, seconds, true, paced).await?;
    Ok(vec![
        Figures::new(
            "isolation chat msgs/s, healthy endpoint only",
            alone_rate,
            None,
            None,
            0,
        ),
        Figures::new(
            "isolation chat msgs/s, plus a 10 s endpoint",
            with_rate,
            None,
            None,
            0,
        ),
        Figures::new(
            "isolation healthy endpoint at 1.6k/s, alone",
            1600.0,
            alone_p50,
            alone_p99,
            0,
        ),
        Figures::new(
            "isolation healthy endpoint at 1.6k/s, + slow",
            1600.0,
            with_p50,
            with_p99,
            0,
        ),
    ])
}
