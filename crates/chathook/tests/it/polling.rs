//! Polling endpoints (issue 23, point 4): an endpoint without a URL whose consumer fetches its events
//! with its own token, through iterators that acknowledge what came before, at least once, across a
//! restart, with long-polling.

use std::time::Duration;

use serde_json::{json, Value};

use crate::util::*;

async fn poll(s: &TestServer, id: &str, token: &str, query: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/webhooks/endpoints/{id}/poll?{query}", s.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The texts of the polled `message.sent` events, in order.
fn texts(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            use base64::Engine;
            let payload = e["body"]["data"]["payload"].as_str().unwrap_or_default();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .unwrap_or_default();
            let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
            v["content"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

async fn polling_endpoint(s: &TestServer, body: Value) -> (String, String) {
    let ep = s
        .endpoint(merged(
            json!({"kind": "polling", "events": ["message.sent"]}),
            &body,
        ))
        .await;
    assert_eq!(
        (ep["kind"].as_str(), ep["url"].as_str()),
        (Some("polling"), Some(""))
    );
    let token = ep["poll_token"].as_str().expect("the poll token on create");
    (ep["id"].as_str().unwrap().to_string(), token.to_string())
}

#[tokio::test]
async fn a_polling_endpoint_drains_the_log_through_iterators_with_nothing_lost_across_a_restart() {
    let s = TestServer::start().await;
    let (id, token) = polling_endpoint(&s, json!({})).await;
    for i in 0..5 {
        s.rest_send("alice", "bob", 1, &format!("m{i}")).await;
    }
    let (st, first) = poll(&s, &id, &token, "limit=3").await;
    assert_eq!(st, 200, "{first}");
    assert_eq!(texts(&first), ["m0", "m1", "m2"]);
    assert_eq!(first["done"], false);
    let e = &first["data"][0];
    assert_eq!(
        (e["event"].as_str(), e["body"]["type"].as_str()),
        (Some("message.sent"), Some("message.sent"))
    );
    assert!(e["id"].as_str().unwrap().starts_with("evt_"));
    let it1 = first["iterator"].as_str().unwrap().to_string();

    let (_, second) = poll(&s, &id, &token, &format!("iterator={it1}&limit=10")).await;
    assert_eq!(texts(&second), ["m3", "m4"]);
    assert_eq!(second["done"], true);
    // Not acknowledged until a poll carries the next iterator: the same events come again, same ids.
    let (_, again) = poll(&s, &id, &token, &format!("iterator={it1}")).await;
    assert_eq!(texts(&again), ["m3", "m4"]);
    assert_eq!(again["data"][0]["id"], second["data"][0]["id"]);
    // Nothing is sent anywhere: the endpoint has no URL and nothing fails.
    let shown = s
        .poll(&format!("/v1/webhooks/endpoints/{id}"), |_| true)
        .await;
    assert_eq!(shown["failing_since"], Value::Null);
    assert!(
        shown.get("poll_token").is_none(),
        "the token shows only on create"
    );

    let s = s.restart(|_| {}).await;
    s.rest_send("alice", "bob", 1, "m5").await;
    s.rest_send("alice", "bob", 1, "m6").await;
    // From the cursor the last iterator left: nothing lost.
    let (_, after) = poll(&s, &id, &token, "").await;
    assert_eq!(texts(&after), ["m3", "m4", "m5", "m6"]);
    let it = after["iterator"].as_str().unwrap();
    let (_, empty) = poll(&s, &id, &token, &format!("iterator={it}")).await;
    assert_eq!((texts(&empty).len(), &empty["done"]), (0, &json!(true)));
    assert_eq!(empty["iterator"], it);
}

#[tokio::test]
async fn a_long_poll_waits_for_the_next_event() {
    let s = TestServer::start().await;
    let (id, token) = polling_endpoint(&s, json!({})).await;
    let (_, empty) = poll(&s, &id, &token, "").await;
    let it = empty["iterator"].as_str().unwrap().to_string();
    let waiting = {
        let (api, id, token, it) = (s.api.clone(), id.clone(), token.clone(), it.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(format!(
                    "{api}/v1/webhooks/endpoints/{id}/poll?iterator={it}&wait_ms=20000"
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the poll waits while nothing comes");
    s.rest_send("alice", "bob", 1, "late").await;
    let page = tokio::time::timeout(LONG, waiting).await.unwrap().unwrap();
    assert_eq!(texts(&page), ["late"]);

    let (st, v) = poll(&s, &id, &token, "wait_ms=30001").await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (400, Some("wait_ms")),
        "{v}"
    );
    let (st, v) = poll(&s, &id, &token, "limit=0").await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (400, Some("limit")),
        "{v}"
    );
    let (st, v) = poll(&s, &id, &token, "iterator=nope").await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (400, Some("iterator")),
        "{v}"
    );
    let (st, v) = poll(&s, &id, &token, "iterator=99999999").await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (400, Some("iterator")),
        "{v}"
    );
}

#[tokio::test]
async fn a_poll_needs_the_endpoints_own_token_not_the_admin_key() {
    let s = TestServer::start().await;
    let (id, token) = polling_endpoint(&s, json!({})).await;
    let (st, _) = poll(&s, &id, &token, "").await;
    assert_eq!(st, 200);
    for wrong in [ADMIN, "ptok_wrong", ""] {
        let (st, v) = poll(&s, &id, wrong, "").await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{wrong}"
        );
    }
    // Rotating replaces the token; the old one stops at once.
    let (st, rotated) = s
        .post(
            &format!("/v1/webhooks/endpoints/{id}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{rotated}");
    let new = rotated["poll_token"].as_str().unwrap();
    assert_ne!(new, token);
    assert_eq!(poll(&s, &id, &token, "").await.0, 401);
    assert_eq!(poll(&s, &id, new, "").await.0, 200);
    // A push endpoint is not polled; a disabled polling endpoint answers 409.
    let rcv = Receiver::start().await;
    let push = s.endpoint(json!({"url": rcv.url})).await;
    let (st, v) = poll(&s, push["id"].as_str().unwrap(), new, "").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("not_polling"))
    );
    s.call(
        "PATCH",
        &format!("/v1/webhooks/endpoints/{id}"),
        Some(json!({"enabled": false})),
        Some(ADMIN),
    )
    .await;
    let (st, v) = poll(&s, &id, new, "").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("endpoint_disabled"))
    );
}

#[tokio::test]
async fn a_polling_endpoint_has_no_url_and_takes_its_flavour_and_filters() {
    let s = TestServer::start().await;
    for (extra, field) in [
        (json!({"url": "http://127.0.0.1:9/x"}), "url"),
        (json!({"events": ["message.before_send.person"]}), "events"),
        (json!({"headers": {"X-A": "b"}}), "headers"),
        (json!({"retry_schedule": [0]}), "retry_schedule"),
    ] {
        let body = merged(
            json!({"kind": "polling", "events": ["message.sent"]}),
            &extra,
        );
        let (st, v) = s.post("/v1/webhooks/endpoints", body).await;
        assert_eq!(
            (st, refusal(&v)),
            (400, (Some(field), Some("polling_endpoint"))),
            "{extra}: {v}"
        );
    }
    // WuKongIM's flavour, groups only: a person message is passed over, the iterator moves past it.
    let (id, token) = polling_endpoint(
        &s,
        json!({"flavour": "wukongim", "events": ["msg.notify"], "filters": {"channel_types": [2]}}),
    )
    .await;
    s.group("g1", &["alice", "bob"]).await;
    s.rest_send("alice", "bob", 1, "person").await;
    s.rest_send("alice", "g1", 2, "group").await;
    let (_, page) = poll(&s, &id, &token, "").await;
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{page}");
    assert_eq!(
        (data[0]["event"].as_str(), data[0]["query"].as_str()),
        (Some("msg.notify"), Some("event=msg.notify"))
    );
    assert_eq!(data[0]["body"][0]["channel_id"], "g1");
    assert_eq!(page["done"], true);
    // A test send is refused: nothing is sent to a polling endpoint.
    let (st, v) = s
        .post(&format!("/v1/webhooks/endpoints/{id}/test"), json!({}))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("polling_endpoint"))
    );
}
