//! Delivery in seq order: with many concurrent senders on one group and on one person channel (clients
//! pipelining sends, and a backend posting), every connection receives the channel's messages in strictly
//! increasing `message_seq`, with none missing. Several rounds, since a misordering needs a race.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::util::*;

/// Sends `n` messages to `channel` with every request written before any result is awaited.
pub(crate) async fn pipelined_sends(
    client: &mut Client,
    channel: &str,
    channel_type: u8,
    tag: &str,
    n: usize,
) {
    for i in 0..n {
        let frame = json!({"id": format!("{tag}-{i}"), "method": "send", "params": {
            "clientMsgNo": format!("{tag}-{i}"), "channelId": channel, "channelType": channel_type,
            "payload": b64("{}")}});
        client
            .ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }
    for i in 0..n {
        let id = format!("{tag}-{i}");
        let r = client
            .wait_for(|f| f["id"] == id.as_str())
            .await
            .expect("a send result");
        assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    }
}

/// Reads `n` recvs (acknowledging each) and returns their seqs for `channel`, in arrival order.
pub(crate) async fn received_seqs(client: &mut Client, channel: &str, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let Some(frame) = client.recv(Duration::from_secs(10), true).await else {
            break;
        };
        let p: &Value = &frame["params"];
        if p["channelId"] == channel {
            seqs.push(p["messageSeq"].as_u64().unwrap());
        }
    }
    seqs
}

pub(crate) fn assert_in_order(seqs: &[u64], expected: usize, who: &str) {
    assert_eq!(seqs.len(), expected, "{who} received {seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "{who} received out of seq order: {seqs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_reaches_every_connection_in_seq_order_under_concurrent_senders() {
    let s = TestServer::start_with(|c| c.limits.sends_per_sec = 0).await;
    let senders: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    let mut members: Vec<&str> = senders.iter().map(String::as_str).collect();
    members.extend(["r1", "r2"]);
    s.group("g", &members).await;
    let per_sender = 30;
    let rest_sends = 30;
    for round in 0..4 {
        let total = senders.len() * per_sender + rest_sends;
        let mut receivers = vec![s.login("r1", 0).await, s.login("r2", 1).await];
        let mut clients = Vec::new();
        for uid in &senders {
            clients.push(s.login(uid, 0).await);
        }
        let api = s.api.clone();
        let backend = tokio::spawn(async move {
            let posts = (0..rest_sends).map(|i| {
                admin_post(&api, "/message/send", json!({"from_uid": "s0", "channel_id": "g",
                    "channel_type": 2, "client_msg_no": format!("rest-{round}-{i}"), "payload": b64("{}")}))
            });
            futures_util::future::join_all(posts).await
        });
        let sending: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                tokio::spawn(async move {
                    pipelined_sends(&mut c, "g", 2, &format!("r{round}-c{i}"), per_sender).await;
                    c
                })
            })
            .collect();
        let reading: Vec<_> = receivers
            .drain(..)
            .map(|mut r| tokio::spawn(async move { received_seqs(&mut r, "g", total).await }))
            .collect();
        for task in sending {
            task.await.unwrap();
        }
        backend.await.unwrap();
        for (i, task) in reading.into_iter().enumerate() {
            let seqs = task.await.unwrap();
            assert_in_order(&seqs, total, &format!("round {round}, receiver {i}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_channel_reaches_every_device_in_seq_order_under_concurrent_senders() {
    let s = TestServer::start_with(|c| c.limits.sends_per_sec = 0).await;
    let per_device = 40;
    for round in 0..4 {
        // alice on three devices and bob on three write to each other at once
        let mut devices = Vec::new();
        for flag in 0..3 {
            devices.push(("alice", "bob", s.login("alice", flag).await));
            devices.push(("bob", "alice", s.login("bob", flag).await));
        }
        let tasks: Vec<_> = devices
            .into_iter()
            .enumerate()
            .map(|(i, (me, peer, mut c))| {
                tokio::spawn(async move {
                    pipelined_sends(&mut c, peer, 1, &format!("p{round}-{i}"), per_device).await;
                    // every device sees every message of the channel but the ones it sent itself
                    let seen = received_seqs(&mut c, peer, 5 * per_device).await;
                    (format!("round {round}, {me} device {i}"), seen)
                })
            })
            .collect();
        for task in tasks {
            let (who, seqs) = task.await.unwrap();
            assert_in_order(&seqs, 5 * per_device, &who);
        }
    }
}
