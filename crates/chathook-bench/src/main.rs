//! chathook's benchmarks: each scenario starts the real server binary on loopback with a temporary data
//! dir, drives it with its own load generator for a bounded time, and prints a table and one JSON line.
//!
//! Run with `cargo run --release -p chathook-bench -- all` (it builds the release server if needed,
//! or uses `CHATHOOK_BINARY`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

const ADMIN: &str = "bench-admin-key-0000";

#[derive(Parser)]
#[command(about = "chathook benchmarks")]
struct Args {
    scenario: Scenario,
    /// Seconds of load per scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Sender/receiver pairs (ws) or concurrent HTTP clients (rest).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Sends each WebSocket sender keeps in flight.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Events queued before the webhook scenario measures their delivery.
    #[arg(long, default_value_t = 40_000)]
    events: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Person messages WebSocket to WebSocket, with send-to-receive latency.
    Ws,
    /// Messages through `POST /message/send`.
    Rest,
    /// Webhook deliveries (unbatched, and msg.notify batches) against a bare keep-alive POST loop.
    Webhook,
    All,
}

struct Figures {
    name: &'static str,
    messages_per_sec: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    total: u64,
}

fn binary() -> anyhow::Result<PathBuf> {
    if let Ok(b) = std::env::var("CHATHOOK_BINARY") {
        return Ok(PathBuf::from(b));
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-q", "-p", "chathook"])
        .status()
        .context("cargo build")?;
    if !status.success() {
        bail!("building the server failed");
    }
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name("chathook"))
}

struct Server {
    child: Child,
    api: String,
    ws: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

async fn start_server(bin: &PathBuf) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let (api_port, ws_port) = (free_port(), free_port());
    let child = Command::new(bin)
        .env("CHATHOOK_API_ADDR", format!("127.0.0.1:{api_port}"))
        .env("CHATHOOK_WS_ADDR", format!("127.0.0.1:{ws_port}"))
        .env("CHATHOOK_DATA_DIR", dir.path())
        .env("CHATHOOK_ADMIN_KEY", ADMIN)
        .env("CHATHOOK_LIMITS__SENDS_PER_SEC", "0")
        .env("CHATHOOK_LIMITS__MAX_UNACKED", "100000")
        .env("CHATHOOK_LIMITS__OUTBOUND_QUEUE", "65536")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let api = format!("http://127.0.0.1:{api_port}");
    for _ in 0..100 {
        if reqwest::get(format!("{api}/health"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Ok(Server {
                child,
                api,
                ws: format!("ws://127.0.0.1:{ws_port}"),
                _dir: dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not start")
}

async fn post(http: &reqwest::Client, api: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    Ok(http
        .post(format!("{api}{path}"))
        .header("token", ADMIN)
        .json(&body)
        .send()
        .await?
        .json()
        .await?)
}

fn percentile(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i] as f64 / 1000.0)
}

async fn connect(
    ws: &str,
    uid: &str,
) -> anyhow::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let (mut socket, _) = tokio_tungstenite::connect_async(ws).await?;
    socket
        .send(Message::Text(
            json!({"method": "connect", "id": "c", "params": {"uid": uid, "token": uid, "deviceFlag": 0}})
                .to_string()
                .into(),
        ))
        .await?;
    let reply = socket.next().await.context("no connect reply")??;
    let v: Value = serde_json::from_str(reply.to_text()?)?;
    if v["result"]["reasonCode"] != 1 {
        bail!("connect refused: {v}");
    }
    Ok(socket)
}

async fn ws_scenario(bin: &PathBuf, args: &Args) -> anyhow::Result<Figures> {
    let server = start_server(bin).await?;
    let http = reqwest::Client::new();
    for i in 0..args.clients {
        for uid in [format!("s{i}"), format!("r{i}")] {
            post(
                &http,
                &server.api,
                "/user/token",
                json!({"uid": uid, "token": uid, "device_flag": 0}),
            )
            .await?;
        }
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let received = Arc::new(AtomicU64::new(0));
    let mut receivers = Vec::new();
    for i in 0..args.clients {
        let socket = connect(&server.ws, &format!("r{i}")).await?;
        let received = received.clone();
        receivers.push(tokio::spawn(async move {
            let (mut tx, mut rx) = socket.split();
            let mut latencies = Vec::new();
            while let Ok(Some(Ok(frame))) =
                tokio::time::timeout(Duration::from_secs(3), rx.next()).await
            {
                let Ok(text) = frame.to_text() else { continue };
                let Ok(v) = serde_json::from_str::<Value>(text) else { continue };
                if v["method"] != "recv" {
                    continue;
                }
                let p = &v["params"];
                if let Some(t) = p["payload"]["t"].as_u64() {
                    latencies.push((start.elapsed().as_micros() as u64).saturating_sub(t));
                }
                received.fetch_add(1, Ordering::Relaxed);
                let ack = json!({"method": "recvack", "params": {"messageId": p["messageId"], "messageSeq": p["messageSeq"]}});
                if tx.send(Message::Text(ack.to_string().into())).await.is_err() {
                    break;
                }
            }
            latencies
        }));
    }
    let mut senders = Vec::new();
    for i in 0..args.clients {
        let socket = connect(&server.ws, &format!("s{i}")).await?;
        let window = Arc::new(Semaphore::new(args.window));
        senders.push(tokio::spawn(async move {
            let (mut tx, mut rx) = socket.split();
            let acks = {
                let window = window.clone();
                tokio::spawn(async move {
                    while let Some(Ok(_)) = rx.next().await {
                        window.add_permits(1);
                    }
                })
            };
            let mut n = 0u64;
            while Instant::now() < deadline {
                let Ok(permit) = window.acquire().await else { break };
                permit.forget();
                n += 1;
                let frame = json!({"method": "send", "id": n.to_string(), "params": {
                    "clientMsgNo": format!("s{i}-{n}"), "channelId": format!("r{i}"), "channelType": 1,
                    "payload": {"t": start.elapsed().as_micros() as u64}}});
                if tx.send(Message::Text(frame.to_string().into())).await.is_err() {
                    break;
                }
            }
            // let the last acks arrive before closing
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while window.available_permits() < 32 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            acks.abort();
        }));
    }
    for s in senders {
        s.await?;
    }
    let elapsed_at_deadline = deadline.duration_since(start).as_secs_f64();
    let mut latencies = Vec::new();
    for r in receivers {
        latencies.extend(r.await?);
    }
    latencies.sort_unstable();
    let total = received.load(Ordering::Relaxed);
    Ok(Figures {
        name: "ws 1:1 WebSocket to WebSocket",
        messages_per_sec: total as f64 / elapsed_at_deadline,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        total,
    })
}

async fn rest_scenario(bin: &PathBuf, args: &Args) -> anyhow::Result<Figures> {
    let server = start_server(bin).await?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let payload =
        base64::engine::general_purpose::STANDARD.encode(r#"{"type":1,"content":"bench"}"#);
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        let api = server.api.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let body = json!({"from_uid": format!("a{i}"), "channel_id": format!("b{i}"), "channel_type": 1,
                                  "payload": payload});
                match post(&http, &api, "/message/send", body).await {
                    Ok(v) if v["status"] == 200 => latencies.push(t.elapsed().as_micros() as u64),
                    _ => break,
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok(Figures {
        name: "rest POST /message/send",
        messages_per_sec: latencies.len() as f64 / elapsed,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        total: latencies.len() as u64,
    })
}

/// A loopback receiver that counts requests and the messages in msg.notify arrays.
struct Sink {
    url: String,
    requests: Arc<AtomicU64>,
    messages: Arc<AtomicU64>,
}

async fn start_sink() -> anyhow::Result<Sink> {
    use axum::extract::{RawQuery, State};
    type Counters = (Arc<AtomicU64>, Arc<AtomicU64>);
    async fn handle(
        State((requests, messages)): State<Counters>,
        RawQuery(q): RawQuery,
        body: axum::body::Bytes,
    ) -> &'static str {
        requests.fetch_add(1, Ordering::Relaxed);
        if q.as_deref() == Some("event=msg.notify") {
            let n =
                serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body).map_or(0, |v| v.len());
            messages.fetch_add(n as u64, Ordering::Relaxed);
        }
        "ok"
    }
    let counters: Counters = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Sink {
        url,
        requests: counters.0,
        messages: counters.1,
    })
}

/// Waits until `counter` reaches `target` (or `limit` passes); returns the rate per second.
async fn rate_until(
    counter: &AtomicU64,
    start_value: u64,
    target: u64,
    limit: Duration,
) -> (f64, u64) {
    let start = Instant::now();
    while counter.load(Ordering::Relaxed) - start_value < target && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = counter.load(Ordering::Relaxed) - start_value;
    (done as f64 / start.elapsed().as_secs_f64(), done)
}

async fn webhook_scenario(bin: &PathBuf, args: &Args) -> anyhow::Result<Vec<Figures>> {
    let sink = start_sink().await?;
    // The physical limit: a bare keep-alive POST loop to the same receiver.
    let body =
        r#"{"type":"message.sent","timestamp":"2026-01-01T00:00:00.000Z","data":{"message_id":1}}"#;
    let bare_for = Duration::from_secs(args.seconds.min(5));
    let deadline = Instant::now() + bare_for;
    let before = sink.requests.load(Ordering::Relaxed);
    let mut loops = Vec::new();
    for _ in 0..64 {
        let url = sink.url.clone();
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
    let bare = (sink.requests.load(Ordering::Relaxed) - before) as f64 / bare_for.as_secs_f64();

    let server = start_server(bin).await?;
    let http = reqwest::Client::new();
    let unbatched = post(&http, &server.api, "/v1/webhooks/endpoints",
        json!({"url": sink.url, "flavour": "standard", "events": ["message.sent"], "enabled": false, "max_in_flight": 64})).await?;
    let notify = post(
        &http,
        &server.api,
        "/v1/webhooks/endpoints",
        json!({"url": sink.url, "flavour": "wukongim", "events": ["msg.notify"], "enabled": false}),
    )
    .await?;
    // Queue the events with both endpoints paused.
    let payload =
        base64::engine::general_purpose::STANDARD.encode(r#"{"type":1,"content":"bench"}"#);
    let per_task = args.events / 32;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (api, payload) = (server.api.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for _ in 0..per_task {
                let body = json!({"from_uid": format!("a{i}"), "channel_id": format!("b{i}"), "channel_type": 1, "payload": payload});
                if post(&http, &api, "/message/send", body).await.is_err() {
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let total = per_task * 32;
    let limit = Duration::from_secs(120);
    let enable = |id: &Value| {
        format!(
            "{}/v1/webhooks/endpoints/{}",
            server.api,
            id["id"].as_str().unwrap_or_default()
        )
    };
    let before = sink.requests.load(Ordering::Relaxed);
    http.patch(enable(&unbatched))
        .header("token", ADMIN)
        .json(&json!({"enabled": true}))
        .send()
        .await?;
    let (unbatched_rate, unbatched_done) = rate_until(&sink.requests, before, total, limit).await;
    let before = sink.messages.load(Ordering::Relaxed);
    http.patch(enable(&notify))
        .header("token", ADMIN)
        .json(&json!({"enabled": true}))
        .send()
        .await?;
    let (notify_rate, notify_done) = rate_until(&sink.messages, before, total, limit).await;
    println!(
        "bare keep-alive POST loop: {bare:.0} requests/s; unbatched webhooks at {:.2}x of it",
        bare / unbatched_rate.max(1.0)
    );
    Ok(vec![
        Figures {
            name: "webhook bare POST loop (limit)",
            messages_per_sec: bare,
            p50_ms: None,
            p99_ms: None,
            total: 0,
        },
        Figures {
            name: "webhook unbatched deliveries",
            messages_per_sec: unbatched_rate,
            p50_ms: None,
            p99_ms: None,
            total: unbatched_done,
        },
        Figures {
            name: "webhook msg.notify messages",
            messages_per_sec: notify_rate,
            p50_ms: None,
            p99_ms: None,
            total: notify_done,
        },
    ])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = binary()?;
    let mut figures = Vec::new();
    if matches!(args.scenario, Scenario::Ws | Scenario::All) {
        figures.push(ws_scenario(&bin, &args).await?);
    }
    if matches!(args.scenario, Scenario::Rest | Scenario::All) {
        figures.push(rest_scenario(&bin, &args).await?);
    }
    if matches!(args.scenario, Scenario::Webhook | Scenario::All) {
        figures.extend(webhook_scenario(&bin, &args).await?);
    }
    println!(
        "{:<32} {:>12} {:>10} {:>10} {:>10}",
        "scenario", "messages/s", "p50 ms", "p99 ms", "total"
    );
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for f in &figures {
        println!(
            "{:<32} {:>12.0} {:>10} {:>10} {:>10}",
            f.name,
            f.messages_per_sec,
            fmt(f.p50_ms),
            fmt(f.p99_ms),
            f.total
        );
    }
    let line: Vec<Value> = figures
        .iter()
        .map(|f| {
            json!({"scenario": f.name, "messages_per_sec": f.messages_per_sec.round(),
                        "p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "total": f.total,
                        "clients": args.clients, "seconds": args.seconds})
        })
        .collect();
    println!("{}", json!({"chathook_bench": line}));
    Ok(())
}
