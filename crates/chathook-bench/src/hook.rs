//! `hook`: what a before-send hook costs. A Tencent-flavour endpoint answers `C2C.CallbackBeforeSendMsg`
//! from a loopback receiver that allows everything at once. One sender sends one message at a time and
//! times each `send` to its acknowledgement, first without the hook and then with it: the difference of
//! the percentiles is the latency the hook adds above the receiver's own (near-zero) time. Then 1:1
//! pairs with a window of sends in flight measure messages/s through the hook.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::chat;
use crate::harness::{
    connect, percentile, post, start_server, start_sink_with, token, Server, SinkOptions,
};
use crate::Figures;

/// Sequential sends timed to their acknowledgement, in microseconds, sorted.
async fn send_latencies(server: &Server, from: &str, to: &str, n: u64) -> anyhow::Result<Vec<u64>> {
    let mut sender = connect(&server.ws, from, None).await?;
    let receiver = connect(&server.ws, to, None).await?;
    // The receiver only has to keep reading (and acknowledging) so that its queue never fills.
    let reading = tokio::spawn(async move {
        let (mut tx, mut rx) = receiver.split();
        while let Ok(Some(Ok(frame))) =
            tokio::time::timeout(Duration::from_secs(3), rx.next()).await
        {
            let Ok(v) = serde_json::from_str::<Value>(frame.to_text().unwrap_or_default()) else {
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
    let mut latencies = Vec::with_capacity(n as usize);
    for i in 0..n {
        let id = i.to_string();
        let frame = json!({"method": "send", "id": id, "params": {"clientMsgNo": format!("{run}-{i}"),
            "channelId": to, "channelType": 1, "payload": {"type": 1, "content": "hi"}}});
        let started = Instant::now();
        sender.send(Message::Text(frame.to_string().into())).await?;
        loop {
            let Some(Ok(reply)) = sender.next().await else {
                anyhow::bail!("the sender's link closed")
            };
            let v: Value =
                serde_json::from_str(reply.to_text().unwrap_or_default()).unwrap_or(Value::Null);
            if v["id"] == id.as_str() {
                break;
            }
        }
        latencies.push(started.elapsed().as_micros() as u64);
    }
    reading.abort();
    latencies.sort_unstable();
    Ok(latencies)
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
    const N: u64 = 2_000;
    let without = send_latencies(&server, "h-a", "h-b", N).await?;
    post(
        &http,
        &server.api,
        "/v1/webhooks/endpoints",
        json!({"url": sink.url, "flavour": "tencent", "events": ["C2C.CallbackBeforeSendMsg"]}),
    )
    .await?;
    let asked_before = sink.requests.load(std::sync::atomic::Ordering::Relaxed);
    let with = send_latencies(&server, "h-a", "h-b", N).await?;
    let asked = sink.requests.load(std::sync::atomic::Ordering::Relaxed) - asked_before;
    anyhow::ensure!(asked >= N, "the hook was asked {asked} times for {N} sends");
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
    let (rate, p50, p99, total) =
        chat::one_to_one(&server, "h", clients.max(1), seconds, window).await?;
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
