//! Where an endpoint reads the event log from (issue 23): `start_from` at creation, and a seek later.

use std::time::Duration;

use serde_json::{json, Value};

use crate::util::*;

fn now_rfc3339() -> String {
    humantime_serde::re::humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// The contents of the messages a standard receiver got, in order.
fn texts(r: &Receiver) -> Vec<String> {
    r.requests()
        .iter()
        .filter_map(|q| {
            let p = q.json()["data"]["payload"].as_str()?.to_string();
            let v: Value = serde_json::from_slice(
                &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, p).ok()?,
            )
            .ok()?;
            v["content"].as_str().map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn a_new_endpoint_starts_now_from_the_oldest_event_or_from_a_time() {
    let s = TestServer::start().await;
    assert_eq!(s.rest_send("alice", "bob", 1, "one").await.0, 200);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let between = now_rfc3339();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(s.rest_send("alice", "bob", 1, "two").await.0, 200);
    let (oldest, now, from_time) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    for (r, start) in [
        (&oldest, json!("oldest")),
        (&now, json!("now")),
        (&from_time, json!(between)),
    ] {
        s.endpoint(json!({"url": r.url, "flavour": "standard", "events": ["message.sent"], "start_from": start}))
            .await;
    }
    assert_eq!(s.rest_send("alice", "bob", 1, "three").await.0, 200);
    for (r, n) in [(&oldest, 3), (&now, 1), (&from_time, 2)] {
        r.wait("its messages", Duration::from_secs(20), |q| q.len() >= n)
            .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(texts(&oldest), ["one", "two", "three"]);
    assert_eq!(texts(&now), ["three"]);
    assert_eq!(texts(&from_time), ["two", "three"]);

    let (st, bad) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": now.url, "events": ["message.sent"], "start_from": "yesterday"}),
        )
        .await;
    assert_eq!(
        (st, bad["error"]["field"].clone()),
        (400, json!("start_from")),
        "{bad}"
    );
}

#[tokio::test]
async fn a_seek_delivers_again_from_a_time_with_the_same_ids_and_can_skip_ahead() {
    let s = TestServer::start().await;
    let r = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": r.url, "flavour": "standard", "events": ["message.sent"]}))
        .await;
    let id = ep["id"].as_str().unwrap();
    assert_eq!(s.rest_send("alice", "bob", 1, "one").await.0, 200);
    r.wait("one", Duration::from_secs(20), |q| !q.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let between = now_rfc3339();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(s.rest_send("alice", "bob", 1, "two").await.0, 200);
    assert_eq!(s.rest_send("alice", "bob", 1, "three").await.0, 200);
    r.wait("three", Duration::from_secs(20), |q| q.len() >= 3)
        .await;
    let first_ids: Vec<String> = r.requests().iter().map(|q| q.id()).collect();

    let path = format!("/v1/webhooks/endpoints/{id}/seek");
    let (st, sought) = s.post(&path, json!({"to": between})).await;
    assert_eq!(st, 200, "{sought}");
    assert!(sought["gap"].is_null(), "the log still holds it: {sought}");
    r.wait("two and three again", Duration::from_secs(20), |q| {
        q.len() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(texts(&r), ["one", "two", "three", "two", "three"]);
    let again: Vec<String> = r.requests()[3..].iter().map(|q| q.id()).collect();
    assert_eq!(again, first_ids[1..], "delivered again under the same ids");

    // ahead to the head: nothing old again, new events still come
    let (st, sought) = s.post(&path, json!({"to": "now"})).await;
    assert_eq!(st, 200, "{sought}");
    assert_eq!(s.rest_send("alice", "bob", 1, "four").await.0, 200);
    r.wait("four", Duration::from_secs(20), |q| q.len() >= 6)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(texts(&r).last().map(String::as_str), Some("four"));
    assert_eq!(r.requests().len(), 6);

    let (st, bad) = s.post(&path, json!({})).await;
    assert_eq!(st, 400, "{bad}");
    let (st, _) = s
        .post(
            "/v1/webhooks/endpoints/ep_nope/seek",
            json!({"to": "oldest"}),
        )
        .await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn a_seek_older_than_the_log_reads_from_its_oldest_event_and_reports_the_gap() {
    let s = TestServer::start_with(|c| {
        c.events.retention_hours = 0;
        c.events.prune_interval_secs = 1;
    })
    .await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    let id = ep["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        s.rest_send("alice", "bob", 1, &format!("gone{i}")).await;
    }
    rcv.wait("the three", LONG, |r| r.len() == 3).await;
    // Delivered and acknowledged: retention removes them.
    eventually("retention to empty the log", LONG, || async {
        match s.server().store().oldest().await.unwrap() {
            None => Ok(()),
            Some(o) => Err(format!("{o:?}")),
        }
    })
    .await;
    let head = s.server().store().head();
    let (st, v) = s
        .post(
            &format!("/v1/webhooks/endpoints/{id}/seek"),
            json!({"position": 0}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["position"].as_u64(), v["gap"]["oldest_position"].as_u64()),
        (Some(head), Some(head + 1)),
        "{v}"
    );
    assert!(v["gap"]["oldest_at"].is_string());
    // Nothing removed comes again; the next message comes once.
    s.rest_send("alice", "bob", 1, "kept").await;
    rcv.wait("the next", LONG, |r| r.len() == 4).await;
    tokio::time::sleep(SHORT).await;
    let mut got = texts(&rcv);
    got.sort();
    assert_eq!(got, ["gone0", "gone1", "gone2", "kept"]);
}
