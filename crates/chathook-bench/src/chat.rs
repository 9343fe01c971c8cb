//! Chat load: senders keep a window of `send`s in flight over WebSocket, receivers acknowledge every
//! `recv` and measure send-to-receive latency from a timestamp in the payload; and the REST send loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::binary;
use crate::harness::{connect, percentile, post, token, Server, Ws};
use crate::Figures;

/// Who sends where.
pub struct Sender {
    pub uid: String,
    pub channel_id: String,
    pub channel_type: u8,
}

/// The client protocol of a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// WuKongIM's JSON-RPC over WebSocket.
    JsonRpc,
    /// WuKongIM's binary protocol over WebSocket, encrypted as its SDKs do.
    Binary,
}

/// How a load runs.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub seconds: u64,
    /// Sends in flight per sender.
    pub window: usize,
    /// The clock the payloads' timestamps count from.
    pub epoch: Instant,
    /// A pause between each sender's sends (unpaced: as fast as the window allows).
    pub pace: Option<Duration>,
    pub protocol: Protocol,
}

impl Load {
    pub fn new(seconds: u64, window: usize) -> Load {
        Load {
            seconds,
            window,
            epoch: Instant::now(),
            pace: None,
            protocol: Protocol::JsonRpc,
        }
    }
}

/// Runs senders against receivers; returns (recv notifications per second, p50, p99, count).
pub async fn run(
    server: &Server,
    senders: Vec<Sender>,
    receivers: Vec<String>,
    load: Load,
) -> anyhow::Result<(f64, Option<f64>, Option<f64>, u64)> {
    let received = Arc::new(AtomicU64::new(0));
    let mut receiving = Vec::new();
    for uid in receivers {
        let received = received.clone();
        receiving.push(match load.protocol {
            Protocol::JsonRpc => {
                let socket = connect(&server.ws, &uid, None).await?;
                tokio::spawn(receive_json(socket, received, load.epoch))
            }
            Protocol::Binary => {
                let socket = binary::connect(&server.ws, &uid).await?;
                tokio::spawn(binary::receive(socket, received, load.epoch))
            }
        });
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(load.seconds);
    // Client message numbers must differ between runs on one server, or they are de-duplicated.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut sending = Vec::new();
    for (i, s) in senders.into_iter().enumerate() {
        let plan = SendPlan {
            channel_id: s.channel_id,
            channel_type: s.channel_type,
            prefix: format!("{run}-{i}"),
            window: load.window,
            deadline,
            pace: load.pace,
            epoch: load.epoch,
        };
        sending.push(match load.protocol {
            Protocol::JsonRpc => {
                let socket = connect(&server.ws, &s.uid, None).await?;
                tokio::spawn(send_json(socket, plan))
            }
            Protocol::Binary => {
                let socket = binary::connect(&server.ws, &s.uid).await?;
                tokio::spawn(binary::send(socket, plan))
            }
        });
    }
    for s in sending {
        s.await?;
    }
    let elapsed = deadline.duration_since(start).as_secs_f64();
    let mut latencies = Vec::new();
    for r in receiving {
        latencies.extend(r.await?);
    }
    latencies.sort_unstable();
    let total = received.load(Ordering::Relaxed);
    Ok((
        total as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        total,
    ))
}

/// What one sender sends.
pub struct SendPlan {
    pub channel_id: String,
    pub channel_type: u8,
    /// Makes client message numbers unique across runs on one server.
    pub prefix: String,
    pub window: usize,
    pub deadline: Instant,
    pub pace: Option<Duration>,
    pub epoch: Instant,
}

impl SendPlan {
    /// Waits for the next send: the pace's tick and a free slot of the window; false once the
    /// deadline has passed (or the slots are closed).
    pub async fn next(
        &self,
        ticker: &mut Option<tokio::time::Interval>,
        slots: &Semaphore,
    ) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let Ok(permit) = slots.acquire().await else {
            return false;
        };
        permit.forget();
        true
    }

    /// Waits, 2 s at most, until every send in flight has been answered.
    pub async fn drain(&self, slots: &Semaphore) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while slots.available_permits() < self.window {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

/// A JSON-RPC receiver: counts `recv`s, acknowledges each, returns the latencies (microseconds).
async fn receive_json(socket: Ws, received: Arc<AtomicU64>, epoch: Instant) -> Vec<u64> {
    let (mut tx, mut rx) = socket.split();
    let mut latencies = Vec::new();
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(3), rx.next()).await {
        let Ok(text) = frame.to_text() else { continue };
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        if v["method"] != "recv" {
            continue;
        }
        let p = &v["params"];
        if let Some(t) = payload_t(&p["payload"]) {
            latencies.push((epoch.elapsed().as_micros() as u64).saturating_sub(t));
        }
        received.fetch_add(1, Ordering::Relaxed);
        let ack = json!({"method": "recvack", "params": {"messageId": p["messageId"], "messageSeq": p["messageSeq"]}});
        if tx
            .send(Message::Text(ack.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    latencies
}

/// A JSON-RPC sender: `send`s until the deadline with a window in flight (a response frees a slot).
async fn send_json(socket: Ws, plan: SendPlan) {
    let slots = Arc::new(Semaphore::new(plan.window));
    let (mut tx, mut rx) = socket.split();
    let acks = {
        let slots = slots.clone();
        tokio::spawn(async move {
            // Only responses free a slot: a sender in a group also receives the others' messages.
            while let Some(Ok(frame)) = rx.next().await {
                if !frame
                    .to_text()
                    .is_ok_and(|t| t.contains("\"method\":\"recv\""))
                {
                    slots.add_permits(1);
                }
            }
        })
    };
    let mut n = 0u64;
    let mut ticker = plan.pace.map(tokio::time::interval);
    while plan.next(&mut ticker, &slots).await {
        n += 1;
        let frame = json!({"method": "send", "id": n.to_string(), "params": {
            "clientMsgNo": format!("{}-{n}", plan.prefix), "channelId": plan.channel_id,
            "channelType": plan.channel_type,
            "payload": {"t": plan.epoch.elapsed().as_micros() as u64}}});
        if tx
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    plan.drain(&slots).await;
    acks.abort();
}

/// `pairs` 1:1 pairs (`{prefix}s{i}` to `{prefix}r{i}`, registered here), each sender keeping `window`
/// sends in flight for `seconds`; returns what [`run`] does.
pub async fn one_to_one(
    server: &Server,
    prefix: &str,
    pairs: usize,
    load: Load,
) -> anyhow::Result<(f64, Option<f64>, Option<f64>, u64)> {
    let http = reqwest::Client::new();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for i in 0..pairs {
        let (s, r) = (format!("{prefix}s{i}"), format!("{prefix}r{i}"));
        token(&http, &server.api, &s).await?;
        token(&http, &server.api, &r).await?;
        senders.push(Sender {
            uid: s,
            channel_id: r.clone(),
            channel_type: 1,
        });
        receivers.push(r);
    }
    run(server, senders, receivers, load).await
}

/// `fanout`: 1:1 pairs, and one 100-member group with a few senders; each with JSON-RPC clients and
/// with binary-protocol clients (encrypted per connection, as WuKongIM's SDKs are).
pub async fn fanout(
    bin: &std::path::Path,
    seconds: u64,
    pairs: usize,
    window: usize,
) -> anyhow::Result<Vec<Figures>> {
    let mut out = Vec::new();
    for (protocol, name) in [
        (Protocol::JsonRpc, "JSON-RPC"),
        (Protocol::Binary, "binary"),
    ] {
        let server = crate::harness::start_server(bin, &[]).await?;
        let load = Load {
            protocol,
            ..Load::new(seconds, window)
        };
        let (rate, p50, p99, total) = one_to_one(&server, "", pairs, load).await?;
        out.push(Figures::new(
            format!("fanout 1:1 WebSocket to WebSocket, {name}"),
            rate,
            p50,
            p99,
            total,
        ));
    }
    for (protocol, name) in [
        (Protocol::JsonRpc, "JSON-RPC"),
        (Protocol::Binary, "binary"),
    ] {
        out.extend(group(bin, seconds, protocol, name).await?);
    }
    Ok(out)
}

/// One 100-member group, four of them sending: as fast as they can, then paced.
async fn group(
    bin: &std::path::Path,
    seconds: u64,
    protocol: Protocol,
    name: &str,
) -> anyhow::Result<Vec<Figures>> {
    let server = crate::harness::start_server(bin, &[]).await?;
    let http = reqwest::Client::new();
    let members: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    for m in &members {
        token(&http, &server.api, m).await?;
    }
    post(
        &http,
        &server.api,
        "/channel",
        json!({"channel_id": "big", "channel_type": 2, "subscribers": members}),
    )
    .await?;
    let group_senders = || -> Vec<Sender> {
        members[..4]
            .iter()
            .map(|m| Sender {
                uid: m.clone(),
                channel_id: "big".into(),
                channel_type: 2,
            })
            .collect()
    };
    let receivers = members[4..].to_vec();
    let load = Load {
        protocol,
        ..Load::new(seconds, 8)
    };
    let (rate, _, _, total) = run(&server, group_senders(), receivers.clone(), load).await?;
    let mut out = vec![Figures::new(
        format!("fanout group of 100, {name}, delivered/s"),
        rate,
        None,
        None,
        total,
    )];
    // Paced at 4 x 500 messages/s (192k deliveries/s) for a latency the receivers can keep up with.
    let load = Load {
        pace: Some(Duration::from_millis(2)),
        epoch: Instant::now(),
        ..load
    };
    let (rate, p50, p99, total) = run(&server, group_senders(), receivers, load).await?;
    out.push(Figures::new(
        format!("fanout group of 100, {name}, paced, delivered/s"),
        rate,
        p50,
        p99,
        total,
    ));
    Ok(out)
}

/// `rest`: concurrent clients calling `POST /message/send`. On PostgreSQL, also how long each commit
/// held the event log's head row, and the ceiling that puts on a cluster (every node's commits queue
/// on that row).
pub async fn rest(
    bin: &std::path::Path,
    seconds: u64,
    clients: usize,
) -> anyhow::Result<Vec<Figures>> {
    let server = crate::harness::start_server(bin, &[]).await?;
    let mut figures = vec![rest_senders(&server.api, seconds, clients).await?];
    let metrics = reqwest::get(format!("{}/metrics", server.api))
        .await?
        .text()
        .await?;
    let read = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (held, locked) = (
        read("chathook_store_log_lock_seconds_sum"),
        read("chathook_store_log_lock_seconds_count"),
    );
    if locked > 0.0 {
        let mean = held / locked;
        let per_commit =
            read("chathook_store_writes_total") / read("chathook_store_commits_total").max(1.0);
        println!(
            "event log head held {:.2} ms per commit ({locked} commits, {per_commit:.1} writes per \
             commit): the cluster's ceiling is about {:.0} commits/s, {:.0} messages/s at this \
             grouping",
            mean * 1e3,
            1.0 / mean,
            per_commit / mean
        );
        figures.push(Figures::new(
            "rest event log head held per commit (µs)",
            (mean * 1e6).round(),
            None,
            None,
            locked as u64,
        ));
        figures.push(Figures::new(
            "rest cluster ceiling, messages/s at this grouping",
            (per_commit / mean).round(),
            None,
            None,
            locked as u64,
        ));
    }
    Ok(figures)
}

/// `clients` REST senders, each to its own person channel, for `seconds`: their rate and latency.
pub async fn rest_senders(api: &str, seconds: u64, clients: usize) -> anyhow::Result<Figures> {
    use base64::Engine;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let payload =
        base64::engine::general_purpose::STANDARD.encode(r#"{"type":1,"content":"bench"}"#);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let api = api.to_string();
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
    Ok(Figures::new(
        "rest POST /message/send",
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len() as u64,
    ))
}

/// The `t` (µs) of a `recv` payload `{"t": ..}`: standard base64 on the wire, or the raw JSON object with
/// `gateway.payload_format = "json"`.
fn payload_t(payload: &Value) -> Option<u64> {
    use base64::Engine;
    match payload {
        Value::String(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            serde_json::from_slice::<Value>(&bytes).ok()?["t"].as_u64()
        }
        other => other["t"].as_u64(),
    }
}
