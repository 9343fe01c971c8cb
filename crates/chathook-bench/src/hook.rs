//! `hook`: what a before-send hook costs. A Tencent-flavour endpoint answers `C2C.CallbackBeforeSendMsg`
//! from a loopback receiver that allows everything at once. One sender sends one message at a time and
//! times each `send` to its acknowledgement, in blocks alternately without and with the hook (the
//! endpoint's events switch between blocks, so that the machine's other work weighs on both alike): the difference of
//! the percentiles is the latency the hook adds above the receiver's own (near-zero) time. Then 1:1
//! pairs with a window of sends in flight measure messages/s through the hook.

use std::path::Path;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::chat;
use crate::harness::{
    connect, patch, percentile, post, start_server, start_sink_with, token, Server, SinkOptions, Ws,
};
use crate::Figures;

/// One sender sending to one reader, one message at a time.
struct Sequential {
    sender: Ws,
    to: String,
    /// Frames sent so far (ids and client_msg_nos stay unique).
    sent: u64,
    /// Makes this run's client_msg_nos unique across runs on one server.
    run: u128,
    reading: tokio::task::JoinHandle<()>,
}

impl Sequential {
    async fn open(server: &Server, from: &str, to: &str) -> anyhow::Result<Self> {
        let sender = connect(&server.ws, from, None).await?;
        let receiver = connect(&server.ws, to, None).await?;
        // The receiver only has to keep reading (and acknowledging) so that its queue never fills.
        let reading = tokio::spawn(async move {
            let (mut tx, mut rx) = receiver.split();
            while let Some(Ok(frame)) = rx.next().await {
                let Ok(v) = serde_json::from_str::<Value>(frame.to_text().unwrap_or_default())
                else {
                    continue;
                };
                let p = &v["params"];
                let ack = json!({"method": "recvack", "params": {"messageId": p["messageId"], "messageSeq": p["messageSeq"]}});
                if tx
                    .send(Message::Text(ack.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(Self {
            sender,
            to: to.to_string(),
            sent: 0,
            run,
            reading,
        })
    }

    /// `n` sends, each timed to its acknowledgement, in microseconds, added to `latencies`.
    async fn time(&mut self, n: u64, latencies: &mut Vec<u64>) -> anyhow::Result<()> {
        for _ in 0..n {
            self.sent += 1;
            let (i, run) = (self.sent, self.run);
            let id = i.to_string();
            let frame = json!({"method": "send", "id": id, "params": {"clientMsgNo": format!("{run}-{i}"),
                "channelId": self.to, "channelType": 1, "payload": {"type": 1, "content": "hi"}}});
            let started = Instant::now();
            self.sender
                .send(Message::Text(frame.to_string().into()))
                .await?;
            loop {
                let Some(Ok(reply)) = self.sender.next().await else {
                    anyhow::bail!("the sender's link closed")
                };
                let v: Value = serde_json::from_str(reply.to_text().unwrap_or_default())
                    .unwrap_or(Value::Null);
                if v["id"] == id.as_str() {
                    break;
                }
            }
            latencies.push(started.elapsed().as_micros() as u64);
        }
        Ok(())
    }
}

impl Drop for Sequential {
    fn drop(&mut self) {
        self.reading.abort();
    }
}

/// Sequential keep-alive POSTs straight to the receiver, timed, in microseconds, sorted: the round trip
/// a hook cannot go below.
async fn bare_round_trips(url: &str, n: u64) -> anyhow::Result<Vec<u64>> {
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let body = json!({"CallbackCommand": "C2C.CallbackBeforeSendMsg", "From_Account": "h-a",
        "To_Account": "h-b", "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}]})
    .to_string();
    let mut latencies = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let started = Instant::now();
        let answer = http.post(url).body(body.clone()).send().await?;
        answer.bytes().await?;
        latencies.push(started.elapsed().as_micros() as u64);
    }
    latencies.sort_unstable();
    Ok(latencies)
}

pub async fn hook(
    bin: &Path,
    seconds: u64,
    clients: usize,
    window: usize,
) -> anyhow::Result<Vec<Figures>> {
    let sink = start_sink_with(SinkOptions {
        answer: Some(r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}"#),
        ..SinkOptions::default()
    })
    .await?;
    let server = start_server(
        bin,
        &[("CHATHOOK_TENCENT__SDK_APP_ID", "1400000000".into())],
    )
    .await?;
    let http = reqwest::Client::new();
    for uid in ["h-a", "h-b"] {
        token(&http, &server.api, uid).await?;
    }
    // Blocks with and without the hook alternate (the endpoint's events switch between the hook and an
    // event these sends do not make), so that whatever else the machine does weighs on both alike.
    const BLOCKS: u64 = 20;
    const PER_BLOCK: u64 = 250;
    const N: u64 = BLOCKS * PER_BLOCK;
    const HOOKED: &str = "C2C.CallbackBeforeSendMsg";
    const UNHOOKED: &str = "Group.CallbackAfterCreateGroup";
    let endpoint = post(
        &http,
        &server.api,
        "/v1/webhooks/endpoints",
        json!({"url": sink.url, "flavour": "tencent", "events": [UNHOOKED]}),
    )
    .await?;
    let path = format!(
        "/v1/webhooks/endpoints/{}",
        endpoint["id"].as_str().unwrap_or_default()
    );
    let mut line = Sequential::open(&server, "h-a", "h-b").await?;
    line.time(PER_BLOCK, &mut Vec::new()).await?; // warm up
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let asked_before = sink.requests.load(std::sync::atomic::Ordering::Relaxed);
    for _ in 0..BLOCKS {
        line.time(PER_BLOCK, &mut without).await?;
        patch(&http, &server.api, &path, json!({"events": [HOOKED]})).await?;
        line.time(PER_BLOCK, &mut with).await?;
        patch(&http, &server.api, &path, json!({"events": [UNHOOKED]})).await?;
    }
    drop(line);
    patch(&http, &server.api, &path, json!({"events": [HOOKED]})).await?;
    let asked = sink.requests.load(std::sync::atomic::Ordering::Relaxed) - asked_before;
    anyhow::ensure!(asked == N, "the hook was asked {asked} times for {N} sends");
    without.sort_unstable();
    with.sort_unstable();
    let bare = bare_round_trips(&sink.url, N).await?;
    let ms = |l: &[u64], p| percentile(l, p).unwrap_or(0.0);
    let added = |p| ms(&with, p) - ms(&without, p);
    println!(
        "hook: the receiver's round trip alone (sequential keep-alive POSTs): p50 {:.3} ms, p99 {:.3} ms",
        ms(&bare, 0.5),
        ms(&bare, 0.99)
    );
    println!(
        "hook: send to ack p50 {:.3} -> {:.3} ms, p99 {:.3} -> {:.3} ms without -> with the hook; \
         added p50 {:.3} ms, p99 {:.3} ms (target p99 <= 0.5 ms)",
        ms(&without, 0.5),
        ms(&with, 0.5),
        ms(&without, 0.99),
        ms(&with, 0.99),
        added(0.5),
        added(0.99)
    );
    // Throughput through the hook: 1:1 pairs, each with a window of sends in flight.
    let (rate, p50, p99, total) = chat::one_to_one(
        &server,
        "h",
        clients.max(1),
        chat::Load::new(seconds, window),
    )
    .await?;
    Ok(vec![
        Figures::new(
            "hook added latency (ms, p50 and p99)",
            0.0,
            Some(added(0.5)),
            Some(added(0.99)),
            N,
        ),
        Figures::new(
            "hook send to ack without the hook",
            0.0,
            Some(ms(&without, 0.5)),
            Some(ms(&without, 0.99)),
            N,
        ),
        Figures::new(
            "hook send to ack with the hook",
            0.0,
            Some(ms(&with, 0.5)),
            Some(ms(&with, 0.99)),
            N,
        ),
        Figures::new(
            "hook receiver round trip alone",
            0.0,
            Some(ms(&bare, 0.5)),
            Some(ms(&bare, 0.99)),
            N,
        ),
        Figures::new(
            "hook 1:1 messages/s through an allow-all hook",
            rate,
            p50,
            p99,
            total,
        ),
    ])
}
