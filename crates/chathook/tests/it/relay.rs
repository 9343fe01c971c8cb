//! Relay mode: a test plays WuKongIM v2.2.5 sending its webhooks to a relay source's ingest URL, with
//! the exact query strings and bodies, and checks what endpoints of each flavour receive.

use std::collections::HashSet;
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
    let std_ep = s.endpoint(json!({"url": standard.url, "flavour": "standard",
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
    // the attempt log names each delivery's source
    let (src_id, ep_id) = (src["id"].as_str().unwrap(), std_ep["id"].as_str().unwrap());
    let (_, log) = s
        .call(
            "GET",
            &format!("/v1/webhooks/endpoints/{ep_id}/attempts"),
            None,
            Some(ADMIN),
        )
        .await;
    let sources: Vec<Value> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["source"].clone())
        .collect();
    assert!(
        sources.len() >= 5 && sources.iter().all(|x| x == src_id),
        "{log}"
    );

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
    // each refusal is counted by reason on its source, and in the metrics
    let id = open["id"].as_str().unwrap();
    let (_, shown) = s
        .call("GET", &format!("/v1/relay/sources/{id}"), None, Some(ADMIN))
        .await;
    let c = &shown["counters"];
    assert_eq!(
        (
            c["received"].clone(),
            c["stored"].clone(),
            c["refused"].clone()
        ),
        (
            json!(4),
            json!(1),
            json!({"secret_wrong": 1, "body_invalid": 1, "event_missing": 1})
        ),
        "{shown}"
    );
    assert!(c["last_request_at"].is_string());
    let fenced_id = fenced["id"].as_str().unwrap();
    let (_, shown) = s
        .call(
            "GET",
            &format!("/v1/relay/sources/{fenced_id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(shown["counters"]["refused"], json!({"network_refused": 1}));
    let metrics = s.metrics().await;
    let stored = format!(
        "chathook_relay_requests_total{{source=\"{id}\",event=\"msg.notify\",outcome=\"stored\"}} 1"
    );
    assert!(metrics.contains(&stored), "{metrics}");
    assert!(metrics.contains("chathook_relay_ingest_seconds_count"));
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

/// Tencent's query for `command`, signed with `token` at `time` (unix seconds).
fn tencent_url(ingest: &str, app: u64, command: &str, token: Option<&str>, time: i64) -> String {
    let mut url = format!(
        "{ingest}?SdkAppid={app}&CallbackCommand={command}&contenttype=json&ClientIP=198.51.100.9&OptPlatform=Android"
    );
    if let Some(t) = token {
        let sign = sha256_hex(&format!("{t}{time}"));
        url.push_str(&format!("&Sign={sign}&RequestTime={time}"));
    }
    url
}

/// Tencent's `Sign`: the SHA-256 of the token and the time, lowercase hex.
fn sha256_hex(text: &str) -> String {
    <sha2::Sha256 as sha2::Digest>::digest(text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn tencent_post(url: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

const APP: u64 = 1_400_000_000;

fn c2c_after_send(key: &str) -> Value {
    json!({"CallbackCommand": "C2C.CallbackAfterSendMsg", "From_Account": "alice", "To_Account": "bob",
           "MsgSeq": 48374, "MsgRandom": 2837546, "MsgTime": 1557481126, "MsgKey": key,
           "MsgId": "144115233406643804-1727580296-4026038328", "OnlineOnlyFlag": 0, "SendMsgResult": 0,
           "ErrorInfo": "send msg succeed", "UnreadMsgNum": 7,
           "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "red packet"}}],
           "CloudCustomData": "", "EventTime": "1670574414123"})
}

#[tokio::test]
async fn tencent_callbacks_are_checked_then_delivered_in_each_flavour_with_the_endpoints_own_sign()
{
    let s = TestServer::start().await;
    let standard = Receiver::start().await;
    let tencent = Receiver::start().await;
    s.endpoint(json!({"url": standard.url, "flavour": "standard",
                      "events": ["message.sent", "tencent.Sns.*"]}))
        .await;
    s.endpoint(
        json!({"url": tencent.url, "flavour": "tencent", "sign_token": "downstream-token",
                      "events": ["C2C.CallbackAfterSendMsg", "Sns.CallbackFriendAdd"]}),
    )
    .await;
    let src = source(
        &s,
        json!({"kind": "tencent", "sign_token": "upstream-token", "sdk_app_id": APP}),
    )
    .await;
    let ingest = src["ingest_url"].as_str().unwrap().to_string();
    let ok = json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0});

    // refused: wrong, missing and stale Sign, another app; nothing of these is stored
    let body = c2c_after_send("refused");
    let cmd = "C2C.CallbackAfterSendMsg";
    let wrong = tencent_url(&ingest, APP, cmd, Some("not-the-token"), now_s());
    assert_eq!(tencent_post(&wrong, &body).await.0, 401);
    let (st, v) = tencent_post(&tencent_url(&ingest, APP, cmd, None, now_s()), &body).await;
    assert_eq!(
        (st, v["error"]["code"].clone()),
        (401, json!("sign_missing"))
    );
    let stale = tencent_url(&ingest, APP, cmd, Some("upstream-token"), now_s() - 120);
    let (st, v) = tencent_post(&stale, &body).await;
    assert_eq!((st, v["error"]["code"].clone()), (401, json!("sign_stale")));
    let other_app = tencent_url(&ingest, APP + 1, cmd, Some("upstream-token"), now_s());
    assert_eq!(tencent_post(&other_app, &body).await.0, 403);

    // a signed after-send and a command chathook has no event for
    let signed = tencent_url(&ingest, APP, cmd, Some("upstream-token"), now_s());
    assert_eq!(
        tencent_post(&signed, &c2c_after_send("48374_2837546_1557481126")).await,
        (200, ok.clone())
    );
    let friend = json!({"CallbackCommand": "Sns.CallbackFriendAdd", "PairList": [{"From_Account": "alice",
                        "To_Account": "bob", "Initiator_Account": "alice"}], "ClientCmd": "friend_add",
                        "AdminAccount": "", "ForceFlag": 0, "EventTime": 1670574414123u64});
    let friend_url = tencent_url(
        &ingest,
        APP,
        "Sns.CallbackFriendAdd",
        Some("upstream-token"),
        now_s(),
    );
    assert_eq!(tencent_post(&friend_url, &friend).await, (200, ok));

    standard
        .wait("message and friend", Duration::from_secs(20), |r| {
            r.len() >= 2
        })
        .await;
    tencent
        .wait("message and friend", Duration::from_secs(20), |r| {
            r.len() >= 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = standard.requests();
    assert_eq!(
        got.len(),
        2,
        "only the accepted callbacks: {:?}",
        got.iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    let sent = got
        .iter()
        .map(|r| r.json())
        .find(|v| v["type"] == "message.sent")
        .unwrap();
    assert_eq!(
        (
            sent["data"]["from_uid"].clone(),
            sent["data"]["channel_id"].clone()
        ),
        (json!("alice"), json!("bob"))
    );
    let friend_std = got
        .iter()
        .map(|r| r.json())
        .find(|v| v["type"] == "tencent.Sns.CallbackFriendAdd")
        .unwrap();
    assert_eq!(friend_std["data"], friend);

    for r in tencent.requests() {
        let q: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(r.query.as_bytes())
                .into_owned()
                .collect();
        let expected = sha256_hex(&format!("downstream-token{}", q["RequestTime"]));
        assert_eq!(q["Sign"], expected, "signed with the endpoint's own token");
        assert_eq!(q["SdkAppid"], APP.to_string());
        if q["CallbackCommand"] == "Sns.CallbackFriendAdd" {
            assert_eq!(r.json(), friend, "delivered unchanged");
            assert_eq!(q["ClientIP"], "198.51.100.9");
        } else {
            assert_eq!(q["CallbackCommand"], "C2C.CallbackAfterSendMsg");
            assert_eq!(r.json()["MsgBody"][0]["MsgContent"]["Text"], "red packet");
        }
    }
}

fn group_before_send() -> Value {
    json!({"CallbackCommand": "Group.CallbackBeforeSendMsg", "GroupId": "@TGS#2C5SZEAEF", "Type": "Public",
           "From_Account": "jared", "Operator_Account": "admin", "Random": 123456, "OnlineOnlyFlag": 0,
           "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}], "CloudCustomData": "",
           "EventTime": 1670574414123u64})
}

#[tokio::test]
async fn a_tencent_before_send_is_answered_by_the_hook_and_by_its_failure_policy_past_the_deadline()
{
    let s = TestServer::start().await;
    let src = source(&s, json!({"kind": "tencent", "hook_deadline_ms": 300})).await;
    let url = tencent_url(
        src["ingest_url"].as_str().unwrap(),
        APP,
        "Group.CallbackBeforeSendMsg",
        None,
        now_s(),
    );
    // no hook endpoint: allow
    let (st, v) = tencent_post(&url, &group_before_send()).await;
    assert_eq!((st, v["ErrorCode"].clone()), (200, json!(0)));

    let hook = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": hook.url, "flavour": "tencent", "events": ["Group.CallbackBeforeSendMsg"]}))
        .await;
    hook.set(Mode::Answer(
        200,
        r#"{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"no"}"#,
    ));
    let (_, v) = tencent_post(&url, &group_before_send()).await;
    assert_eq!(
        (v["ErrorCode"].clone(), v["ErrorInfo"].clone()),
        (json!(1), json!("no"))
    );
    assert_eq!(hook.requests()[0].json()["GroupId"], "@TGS#2C5SZEAEF");
    hook.set(Mode::Answer(
        200,
        r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"**"}}]}"#,
    ));
    let (_, v) = tencent_post(&url, &group_before_send()).await;
    assert_eq!(v["ErrorCode"], 0);
    assert_eq!(
        v["MsgBody"][0]["MsgContent"]["Text"], "**",
        "the rewrite goes back to Tencent: {v}"
    );

    // the hook is slower than the source's deadline: fail open, or reject under on_failure = reject
    hook.set(Mode::Delay(Duration::from_secs(1)));
    let (st, v) = tencent_post(&url, &group_before_send()).await;
    assert_eq!((st, v["ErrorCode"].clone()), (200, json!(0)));
    let id = ep["id"].as_str().unwrap();
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/v1/webhooks/endpoints/{id}"),
            Some(json!({"on_failure": "reject"})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200);
    let (_, v) = tencent_post(&url, &group_before_send()).await;
    assert_eq!(v["ErrorCode"], 1, "{v}");
}

#[tokio::test]
async fn relay_addr_serves_ingest_alone_with_the_body_limit() {
    let s = TestServer::start_with(|c| {
        c.relay.addr = Some("127.0.0.1:0".parse().unwrap());
        c.limits.max_http_body_bytes = 64 * 1024;
    })
    .await;
    let relay = s.server().relay_addr().unwrap();
    let receiver = Receiver::start().await;
    s.endpoint(json!({"url": receiver.url, "flavour": "standard", "events": ["message.sent"]}))
        .await;
    let src = source(&s, json!({"kind": "wukongim"})).await;
    let url = src["ingest_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("http://{relay}/relay/")), "{url}");
    assert_eq!(
        wk_post(&url, "msg.notify", &json!([wk_message(41, 1, "hi")]))
            .await
            .0,
        200
    );
    receiver
        .wait("the message", Duration::from_secs(20), |r| !r.is_empty())
        .await;
    // not on the API's address, and no admin route on the relay's
    let on_api = url.replace(&format!("http://{relay}"), &s.api);
    assert_eq!(wk_post(&on_api, "msg.notify", &json!([])).await.0, 404);
    let admin = reqwest::Client::new()
        .get(format!("http://{relay}/v1/relay/sources"))
        .header("token", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status().as_u16(), 404);
    let big = json!([wk_message(42, 2, &"x".repeat(70 * 1024))]);
    assert_eq!(wk_post(&url, "msg.notify", &big).await.0, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_any_node_takes_a_sources_requests_and_follows_its_deletion() {
    let shared = crate::cluster::Shared::start("relay");
    let a = TestServer::start_with(shared.node(1)).await;
    let b = TestServer::start_with(shared.node(2)).await;
    let receiver = Receiver::start().await;
    a.endpoint(json!({"url": receiver.url, "flavour": "standard", "events": ["message.sent"]}))
        .await;
    let src = source(&a, json!({"kind": "wukongim"})).await;
    let on_a = src["ingest_url"].as_str().unwrap().to_string();
    let on_b = on_a.replace(&a.api, &b.api);
    let batch = json!([wk_message(51, 1, "one"), wk_message(52, 2, "two")]);
    assert_eq!(wk_post(&on_b, "msg.notify", &batch).await.0, 200);
    // the same batch again through the other node: de-duplicated in the shared database
    assert_eq!(wk_post(&on_a, "msg.notify", &batch).await.0, 200);
    receiver
        .wait("both messages", Duration::from_secs(20), |r| r.len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.requests().len(), 2, "each message once");

    let id = src["id"].as_str().unwrap();
    let (st, _) = a
        .call(
            "DELETE",
            &format!("/v1/relay/sources/{id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 204);
    eventually(
        "node B refuses the deleted source",
        Duration::from_secs(10),
        || {
            let on_b = on_b.clone();
            async move {
                match wk_post(&on_b, "msg.notify", &json!([])).await {
                    (404, _) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_during_a_relay_stream_loses_no_request_that_got_its_200() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = spawn_binary(dir.path()).await;
    let receiver = Receiver::start().await;
    admin_post(
        &proc.api,
        "/v1/webhooks/endpoints",
        json!({"url": receiver.url, "flavour": "standard", "events": ["message.sent"]}),
    )
    .await;
    let src = admin_post(&proc.api, "/v1/relay/sources", json!({"kind": "wukongim"})).await;
    let url = src["ingest_url"].as_str().unwrap().to_string();
    let path = url.strip_prefix(&proc.api).unwrap().to_string();

    // a steady stream of msg.notify batches; the ids whose batch was answered 200
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let stream = {
        let (acked, url) = (acked.clone(), url.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for batch in 0..10_000i64 {
                let ids: Vec<i64> = (0..10).map(|i| 1_000 + batch * 10 + i).collect();
                let body: Vec<Value> = ids
                    .iter()
                    .map(|id| wk_message(*id, *id as u64, "m"))
                    .collect();
                match http
                    .post(format!("{url}?event=msg.notify"))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().as_u16() == 200 => acked.lock().unwrap().extend(ids),
                    _ => return,
                }
            }
        })
    };
    eventually("some batches answered", Duration::from_secs(20), || {
        let n = acked.lock().unwrap().len();
        async move {
            if n >= 200 {
                Ok(())
            } else {
                Err(n.to_string())
            }
        }
    })
    .await;
    proc.child.kill().unwrap(); // SIGKILL, mid-stream
    let _ = proc.child.wait();
    let _ = stream.await;
    let acked: Vec<i64> = acked.lock().unwrap().clone();

    let mut proc = spawn_binary(dir.path()).await;
    // WuKongIM sends its failed batch again after the restart: de-duplicated, not lost
    let again: Vec<Value> = acked[acked.len() - 10..]
        .iter()
        .map(|id| wk_message(*id, *id as u64, "m"))
        .collect();
    let (st, _) = wk_post(
        &format!("{}{path}", proc.api),
        "msg.notify",
        &Value::Array(again),
    )
    .await;
    assert_eq!(st, 200);
    receiver
        .wait("every acknowledged message", Duration::from_secs(60), |r| {
            let got: HashSet<i64> = r
                .iter()
                .filter_map(|q| q.json()["data"]["message_id"].as_i64())
                .collect();
            acked.iter().all(|id| got.contains(id))
        })
        .await;
    let _ = proc.child.kill();
}

#[tokio::test]
async fn relayed_events_are_retried_dead_lettered_and_replayed_with_their_source_and_sources_filter_them(
) {
    let s = TestServer::start_with(|c| {
        c.webhook.retry_schedule = vec![Duration::ZERO, Duration::from_millis(50)];
        c.webhook.retry_jitter = 0.0;
    })
    .await;
    let failing = Receiver::start().await;
    failing.set(Mode::Status(500));
    let local_only = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": failing.url, "flavour": "standard", "events": ["message.sent"]}))
        .await;
    s.endpoint(
        json!({"url": local_only.url, "flavour": "standard", "events": ["message.sent"],
                      "sources": ["local"]}),
    )
    .await;
    let src = source(&s, json!({"kind": "wukongim"})).await;
    let url = src["ingest_url"].as_str().unwrap();
    assert_eq!(
        wk_post(url, "msg.notify", &json!([wk_message(61, 1, "r")]))
            .await
            .0,
        200
    );
    let (st, _) = s.rest_send("alice", "bob", 1, "local one").await;
    assert_eq!(st, 200);

    // the relayed message runs out of retries: a dead letter that names its source
    let id = ep["id"].as_str().unwrap();
    let src_id = src["id"].as_str().unwrap();
    let dead = s
        .poll(&format!("/v1/webhooks/endpoints/{id}/dead-letters"), |v| {
            v["data"].as_array().is_some_and(|d| d.len() == 2)
        })
        .await;
    let sources: Vec<&str> = dead["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&src_id) && sources.contains(&"local"),
        "{dead}"
    );
    let relayed = dead["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["source"] == src_id)
        .unwrap();
    assert_eq!(failing.requests().len(), 4, "two attempts each");
    // replayed once the receiver heals
    failing.set(Mode::Ok);
    let delivery = relayed["delivery_id"].as_str().unwrap();
    let (st, _) = s
        .post(
            &format!("/v1/webhooks/endpoints/{id}/dead-letters/{delivery}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(st, 202);
    failing
        .wait(
            "the replayed relayed message",
            Duration::from_secs(20),
            |r| r.len() > 4 && r[4..].iter().any(|q| q.json()["data"]["message_id"] == 61),
        )
        .await;

    // the endpoint limited to `local` got the local message only
    local_only
        .wait("the local message", Duration::from_secs(20), |r| {
            !r.is_empty()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: Vec<Value> = local_only
        .requests()
        .iter()
        .map(|r| r.json()["data"]["from_uid"].clone())
        .collect();
    assert_eq!(got, [json!("alice")]);
}
