//! Relay mode: a test plays WuKongIM v2.2.5 sending its webhooks to a relay source's ingest URL, with
//! the exact query strings and bodies, and checks what endpoints of each flavour receive.

use std::time::Duration;

use serde_json::{json, Value};

use crate::util::*;

/// A v2.2.5 `MessageResp` as `msg.notify` carries it.
fn wk_message(id: i64, seq: u64, text: &str) -> Value {
    json!({"header": {"no_persist": 0, "red_dot": 1, "sync_once": 0}, "setting": 0,
           "message_id": id, "message_idstr": id.to_string(), "client_msg_no": format!("c-{id}"),
           "stream_idstr": "0", "message_seq": seq, "from_uid": "alice", "channel_id": "g1",
           "channel_type": 2, "expire": 0, "timestamp": 1_700_000_000, "payload": b64(text)})
}

async fn wk_post(url: &str, event: &str, body: &Value) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{url}?event={event}"))
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn source(s: &TestServer, body: Value) -> Value {
    let (st, v) = s.post("/v1/relay/sources", body).await;
    assert_eq!(st, 201, "{v}");
    v
}

#[tokio::test]
async fn wukongim_webhooks_reach_every_flavour_once_per_message_after_a_plain_200() {
    let s = TestServer::start().await;
    let standard = Receiver::start().await;
    let wukongim = Receiver::start().await;
    s.endpoint(json!({"url": standard.url, "flavour": "standard",
                      "events": ["message.sent", "user.online", "message.offline", "wukongim.msg.*"]}))
        .await;
    s.endpoint(json!({"url": wukongim.url, "flavour": "wukongim",
                      "events": ["msg.notify", "msg.offline", "foreign"]}))
        .await;
    let src = source(
        &s,
        json!({"kind": "wukongim", "description": "prod WuKongIM"}),
    )
    .await;
    let url = src["ingest_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&s.api) && url.contains("/relay/"), "{url}");

    // exactly 200 with an empty body: WuKongIM takes nothing else as success
    let batch = json!([wk_message(11, 1, "one"), wk_message(12, 2, "two")]);
    assert_eq!(
        wk_post(&url, "msg.notify", &batch).await,
        (200, String::new())
    );
    // a failed batch merged into the next one: 12 again, with 13
    let merged = json!([wk_message(12, 2, "two"), wk_message(13, 3, "three")]);
    assert_eq!(wk_post(&url, "msg.notify", &merged).await.0, 200);
    let status = json!(["alice-0-1-7-1-1"]);
    assert_eq!(wk_post(&url, "user.onlinestatus", &status).await.0, 200);
    let mut offline = wk_message(14, 4, "four");
    offline["to_uids"] = json!(["bob", "carol"]);
    offline["source_id"] = json!(1001);
    assert_eq!(wk_post(&url, "msg.offline", &offline).await.0, 200);
    assert_eq!(
        wk_post(&url, "msg.stream", &json!({"any": "thing"}))
            .await
            .0,
        200
    );

    standard
        .wait("five standard deliveries", Duration::from_secs(20), |r| {
            r.len() >= 5
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let types: Vec<(String, Value)> = standard
        .requests()
        .iter()
        .map(|r| {
            let v = r.json();
            (
                v["type"].as_str().unwrap_or_default().to_string(),
                v["data"].clone(),
            )
        })
        .collect();
    let sent: Vec<i64> = types
        .iter()
        .filter(|(t, _)| t == "message.sent")
        .map(|(_, d)| d["message_id"].as_i64().unwrap())
        .collect();
    assert_eq!(sent, [11, 12, 13], "each message once");
    let online = types.iter().find(|(t, _)| t == "user.online").unwrap();
    assert_eq!(
        (online.1["uid"].clone(), online.1["conn_id"].clone()),
        (json!("alice"), json!(7))
    );
    let off = types.iter().find(|(t, _)| t == "message.offline").unwrap();
    assert_eq!(off.1["to_uids"], json!(["bob", "carol"]));
    let foreign = types
        .iter()
        .find(|(t, _)| t == "wukongim.msg.stream")
        .unwrap();
    assert_eq!(foreign.1, json!({"any": "thing"}));

    // the WuKongIM flavour gets WuKongIM's own bodies back
    wukongim
        .wait(
            "notify, offline and the foreign event",
            Duration::from_secs(20),
            |r| {
                notify_ids(r).len() >= 3
                    && r.iter().any(|q| q.event() == "msg.offline")
                    && r.iter().any(|q| q.event() == "msg.stream")
            },
        )
        .await;
    assert_eq!(notify_ids(&wukongim.requests()), [11, 12, 13]);
    let off = wukongim.by_event("msg.offline");
    assert_eq!(off[0].json()["to_uids"], json!(["bob", "carol"]));
    assert_eq!(off[0].json()["source_id"], json!(1001));
    assert_eq!(
        wukongim.by_event("msg.stream")[0].body,
        br#"{"any":"thing"}"#
    );
}

#[tokio::test]
async fn refused_ingest_requests_store_nothing() {
    let s = TestServer::start().await;
    let receiver = Receiver::start().await;
    s.endpoint(
        json!({"url": receiver.url, "flavour": "standard", "events": ["message.sent", "foreign"]}),
    )
    .await;
    let open = source(&s, json!({"kind": "wukongim"})).await;
    let url = open["ingest_url"].as_str().unwrap().to_string();
    let fenced = source(
        &s,
        json!({"kind": "wukongim", "allowed_networks": ["10.0.0.0/8"]}),
    )
    .await;
    let fenced_url = fenced["ingest_url"].as_str().unwrap().to_string();
    let batch = json!([wk_message(21, 1, "x")]);

    let (wrong_secret, _) = url.rsplit_once('/').unwrap();
    let (st, body) = wk_post(&format!("{wrong_secret}/AAAA"), "msg.notify", &batch).await;
    assert_eq!(st, 404, "{body}");
    let (st, body) = wk_post(&fenced_url, "msg.notify", &batch).await;
    assert_eq!(st, 403, "{body}");
    let (st, body) = wk_post(&url, "msg.notify", &json!([{"message_id": "x"}])).await;
    assert_eq!(st, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["field"], "body", "{v}");
    let resp = reqwest::Client::new()
        .post(&url)
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400, "no ?event=");
    // the admin API is not reachable through the ingest path's lack of a key
    let (st, _) = s.call("GET", "/v1/relay/sources", None, None).await;
    assert_eq!(st, 401);

    // only a good request reaches the endpoint
    assert_eq!(
        wk_post(&url, "msg.notify", &json!([wk_message(22, 2, "ok")]))
            .await
            .0,
        200
    );
    receiver
        .wait("the good message", Duration::from_secs(20), |r| {
            !r.is_empty()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids: Vec<Value> = receiver
        .requests()
        .iter()
        .map(|r| r.json()["data"]["message_id"].clone())
        .collect();
    assert_eq!(ids, [json!(22)]);
}

#[tokio::test]
async fn sources_are_listed_changed_rotated_and_deleted_without_showing_the_sign_token_again() {
    let s = TestServer::start().await;
    let created = source(
        &s,
        json!({"kind": "tencent", "sign_token": "tok-123", "sdk_app_id": 1400000000u64}),
    )
    .await;
    assert_eq!(created["sign_token"], "tok-123");
    assert_eq!(created["max_skew_s"], 60);
    let id = created["id"].as_str().unwrap();
    let (st, list) = s.call("GET", "/v1/relay/sources", None, Some(ADMIN)).await;
    assert_eq!(st, 200);
    assert_eq!(list["data"][0]["id"], id);
    assert_eq!(list["data"][0]["sign_token_set"], true);
    assert!(list["data"][0].get("sign_token").is_none());
    assert!(!list.to_string().contains("tok-123"));

    let (st, changed) = s
        .call(
            "PATCH",
            &format!("/v1/relay/sources/{id}"),
            Some(json!({"max_skew_s": 30, "allowed_networks": null})),
            Some(ADMIN),
        )
        .await;
    assert_eq!((st, changed["max_skew_s"].clone()), (200, json!(30)));
    let (st, bad) = s
        .call(
            "PATCH",
            &format!("/v1/relay/sources/{id}"),
            Some(json!({"allowed_networks": ["nope"]})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (st, bad["error"]["field"].clone()),
        (400, json!("allowed_networks"))
    );

    let (st, rotated) = s
        .call(
            "POST",
            &format!("/v1/relay/sources/{id}/rotate"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200);
    assert_ne!(rotated["ingest_url"], created["ingest_url"]);
    assert!(rotated["previous_ingest_url_valid_until"].is_string());

    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/relay/sources/{id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .call("GET", &format!("/v1/relay/sources/{id}"), None, Some(ADMIN))
        .await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn a_rotated_ingest_url_keeps_working_through_its_grace() {
    let s = TestServer::start().await;
    let receiver = Receiver::start().await;
    s.endpoint(json!({"url": receiver.url, "flavour": "standard", "events": ["message.sent"]}))
        .await;
    let src = source(&s, json!({"kind": "wukongim"})).await;
    let old = src["ingest_url"].as_str().unwrap().to_string();
    let id = src["id"].as_str().unwrap();
    let (_, rotated) = s
        .call(
            "POST",
            &format!("/v1/relay/sources/{id}/rotate"),
            None,
            Some(ADMIN),
        )
        .await;
    let new = rotated["ingest_url"].as_str().unwrap().to_string();
    assert_eq!(
        wk_post(&old, "msg.notify", &json!([wk_message(31, 1, "old")]))
            .await
            .0,
        200
    );
    assert_eq!(
        wk_post(&new, "msg.notify", &json!([wk_message(32, 2, "new")]))
            .await
            .0,
        200
    );
    receiver
        .wait("both", Duration::from_secs(20), |r| r.len() >= 2)
        .await;
}
