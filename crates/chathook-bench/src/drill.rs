//! What the crash and cluster drills share: a flood of REST sends from 32 clients over 64 person
//! channels (a client whose node stops answering moves to the next and sends the same
//! `client_msg_no` again, as one behind a load balancer would), and the two checks after it: every
//! acknowledged message's event reached the receiver, and every one is in history.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use crate::harness::post;

/// The person channels the messages go to (one sender, `a`).
const CHANNELS: u64 = 64;
const CLIENTS: u64 = 32;

/// An acknowledged message: (channel, message id, seq).
pub type Acked = (String, i64, u64);

/// Sends messages `from..to` (every `CLIENTS`th per client) through `apis`; what was acknowledged.
pub async fn flood(apis: Arc<Vec<String>>, from: u64, to: u64) -> Vec<Acked> {
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let apis = apis.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default();
            let mut node = c as usize % apis.len();
            let mut acked = Vec::new();
            let mut i = from + c;
            'messages: while i < to {
                let channel = format!("b{}", i % CHANNELS);
                let body = json!({"from_uid": "a", "channel_id": channel, "channel_type": 1,
                                  "client_msg_no": format!("m{i}"), "payload": "e30="});
                for _ in 0..apis.len() * 2 {
                    match post(&http, &apis[node], "/message/send", body.clone()).await {
                        Ok(v) if v["status"] == 200 => {
                            acked.push((
                                channel.clone(),
                                v["data"]["message_id"].as_i64().unwrap_or(0),
                                v["data"]["message_seq"].as_u64().unwrap_or(0),
                            ));
                            i += CLIENTS;
                            continue 'messages;
                        }
                        _ => node = (node + 1) % apis.len(),
                    }
                }
                break;
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

/// Waits until the receiver's `ids` hold every acknowledged message (or fails after `limit`).
pub async fn wait_delivered(
    ids: &Mutex<HashSet<i64>>,
    acked: &[Acked],
    limit: Duration,
) -> anyhow::Result<()> {
    let wanted: HashSet<i64> = acked.iter().map(|a| a.1).collect();
    let deadline = Instant::now() + limit;
    loop {
        let got = ids
            .lock()
            .map(|s| wanted.iter().filter(|i| s.contains(i)).count())
            .unwrap_or(0);
        if got == wanted.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {} acknowledged messages never reached the receiver",
                wanted.len() - got,
                wanted.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fails unless every acknowledged seq is in its channel's history, read through `api`.
pub async fn check_history(api: &str, acked: &[Acked]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut missing = 0;
    for c in 0..CHANNELS {
        let channel = format!("b{c}");
        let page = post(
            &http,
            api,
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
    Ok(())
}
