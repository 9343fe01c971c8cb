//! Before-send hooks against a real receiver: each verdict (Tencent's codes at both ends of each
//! pass-through range and just outside them, the standard flavour's actions), timeouts under both
//! failure policies, WebSocket and REST sends, order under a slow hook, one hook per channel type.

use std::time::Duration;

use chathook_events::Event;
use serde_json::{json, Value};

use crate::util::*;

const ALLOW: &str = r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}"#;

async fn hooked(flavour: &str, events: &[&str], extra: Value) -> (TestServer, Receiver, String) {
    let s = TestServer::start_with(|c| c.tencent.sdk_app_id = 1_400_000_000).await;
    let rcv = Receiver::start().await;
    rcv.set(Mode::Answer(200, ALLOW));
    let mut body = json!({"url": rcv.url, "flavour": flavour, "events": events});
    if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(x.clone());
    }
    let ep = s.endpoint(body).await;
    (s, rcv, ep["id"].as_str().unwrap().to_string())
}

/// alice (connected) and bob (connected, primary), tokens registered.
async fn pair(s: &TestServer) -> (Client, Client) {
    (
        s.login_primary("alice", 0).await,
        s.login_primary("bob", 0).await,
    )
}

fn sent_contents(s_events: &[chathook_events::LoggedEvent]) -> Vec<String> {
    s_events
        .iter()
        .filter_map(|e| match &e.event {
            Event::MessageSent(m) => Some(String::from_utf8_lossy(&m.payload).to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn tencent_verdicts_on_person_messages() {
    let (s, rcv, _) = hooked("tencent", &["C2C.CallbackBeforeSendMsg"], json!({})).await;
    let (mut alice, mut bob) = pair(&s).await;

    // 0 without MsgBody: sent as it is; the hook saw Tencent's request
    let r = alice.send_msg("bob", 1, "m1", "hello").await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    let got = bob.recv(LONG, true).await.unwrap();
    assert_eq!(payload_json(&got["params"]["payload"])["content"], "hello");
    let asked = rcv.requests()[0].clone();
    assert!(
        asked
            .query
            .contains("CallbackCommand=C2C.CallbackBeforeSendMsg"),
        "{}",
        asked.query
    );
    assert!(asked.query.contains("SdkAppid=1400000000"));
    let body = asked.json();
    assert_eq!(
        (body["From_Account"].as_str(), body["To_Account"].as_str()),
        (Some("alice"), Some("bob"))
    );
    assert_eq!(body["MsgBody"][0]["MsgContent"]["Text"], "hello");

    // 0 with MsgBody: the new content is what is delivered, stored and in the after-send event
    rcv.set(Mode::Answer(
        200,
        r#"{"ErrorCode":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"h***o"}}]}"#,
    ));
    let r = alice.send_msg("bob", 1, "m2", "hello").await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    let got = bob.recv(LONG, true).await.unwrap();
    assert_eq!(payload_json(&got["params"]["payload"])["content"], "h***o");
    let history = s.sync("bob", "alice", 1, (0, 0), 10, 0).await;
    assert!(
        history
            .to_string()
            .contains(&b64(r#"{"content":"h***o","type":1}"#)),
        "{history}"
    );

    // 1: refused with 20006, nothing stored or delivered
    rcv.set(Mode::Answer(
        200,
        r#"{"ErrorCode":1,"ErrorInfo":"not allowed"}"#,
    ));
    let r = alice.send_msg("bob", 1, "m3", "bad").await;
    assert_eq!(r["result"]["reasonCode"], 11, "{r}");
    assert_eq!(r["result"]["errorCode"], 20006);
    assert_eq!(r["result"]["errorInfo"], "not allowed");

    // 2: a normal acknowledgement with an id, and nobody receives it
    rcv.set(Mode::Answer(200, r#"{"ErrorCode":2}"#));
    let r = alice.send_msg("bob", 1, "m4", "quiet").await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    assert_ne!(r["result"]["messageId"], "0");

    // both ends of the pass-through range reject with the code; just outside it is a failure (allow)
    for (code, refused) in [
        (120_001, true),
        (130_000, true),
        (120_000, false),
        (130_001, false),
    ] {
        let answer: &'static str = Box::leak(
            format!(r#"{{"ErrorCode":{code},"ErrorInfo":"code {code}"}}"#).into_boxed_str(),
        );
        rcv.set(Mode::Answer(200, answer));
        let r = alice
            .send_msg("bob", 1, &format!("r{code}"), &format!("c{code}"))
            .await;
        if refused {
            assert_eq!(r["result"]["errorCode"], code, "{r}");
            assert_eq!(r["result"]["errorInfo"], format!("code {code}"));
        } else {
            assert_eq!(r["result"]["reasonCode"], 1, "{code} fails open: {r}");
        }
    }
    assert!(bob.recv(LONG, true).await.is_some());
    assert!(bob.recv(LONG, true).await.is_some());
    assert!(
        bob.recv(Duration::from_millis(300), true).await.is_none(),
        "nothing else reached bob"
    );

    let contents = sent_contents(&s.events().await);
    assert_eq!(
        contents,
        vec![
            r#"{"content":"hello","type":1}"#.to_string(),
            r#"{"content":"h***o","type":1}"#.to_string(),
            r#"{"content":"c120000","type":1}"#.to_string(),
            r#"{"content":"c130001","type":1}"#.to_string(),
        ],
        "no event for the refused and dropped ones"
    );
}

#[tokio::test]
async fn tencent_verdicts_on_group_messages_and_rest_sends() {
    let (s, rcv, _) = hooked("tencent", &["Group.CallbackBeforeSendMsg"], json!({})).await;
    s.group("g", &["alice", "bob"]).await;
    for (code, refused_with) in [
        (1, Some(10_016)),
        (10_100, Some(10_100)),
        (10_200, Some(10_200)),
        (10_099, None),
        (10_201, None),
    ] {
        let answer: &'static str =
            Box::leak(format!(r#"{{"ErrorCode":{code},"ErrorInfo":"no"}}"#).into_boxed_str());
        rcv.set(Mode::Answer(200, answer));
        let (st, body) = s
            .post(
                "/message/send",
                json!({"from_uid": "alice", "channel_id": "g", "channel_type": 2, "payload": b64("x")}),
            )
            .await;
        match refused_with {
            Some(c) => {
                assert_eq!(st, 400, "{code}: {body}");
                assert_eq!(body["code"], "rejected_by_hook");
                assert!(
                    body["msg"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("ErrorCode {c}")),
                    "{body}"
                );
                assert_eq!(
                    (body["error_code"].as_i64(), body["error_info"].as_str()),
                    (Some(c), Some("no"))
                );
            }
            None => assert_eq!(st, 200, "{code} fails open: {body}"),
        }
    }
    let asked = rcv.requests()[0].json();
    assert_eq!(asked["CallbackCommand"], "Group.CallbackBeforeSendMsg");
    assert_eq!(asked["GroupId"], "g");
    // a backend's send may skip the hook
    let before = rcv.requests().len();
    rcv.set(Mode::Answer(200, r#"{"ErrorCode":1}"#));
    let (st, body) = s
        .post(
            "/message/send",
            json!({"from_uid": "alice", "channel_id": "g", "channel_type": 2, "payload": b64("y"), "skip_before_send": true}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(rcv.requests().len(), before, "the hook was not asked");
    // person messages have no hook here
    let (st, _) = s
        .post(
            "/message/send",
            json!({"from_uid": "alice", "channel_id": "bob", "channel_type": 1, "payload": b64("z")}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(rcv.requests().len(), before);
}

#[tokio::test]
async fn a_timeout_follows_the_failure_policy() {
    for (policy, delivered) in [("allow", true), ("reject", false)] {
        let (s, rcv, _) = hooked(
            "standard",
            &["message.before_send.person"],
            json!({"hook_timeout_ms": 200, "on_failure": policy}),
        )
        .await;
        rcv.set(Mode::Hang);
        let (mut alice, mut bob) = pair(&s).await;
        let r = alice.send_msg("bob", 1, "t1", "hello").await;
        if delivered {
            assert_eq!(r["result"]["reasonCode"], 1, "{r}");
            assert!(bob.recv(LONG, true).await.is_some());
        } else {
            assert_eq!(r["result"]["reasonCode"], 11, "{r}");
            assert_eq!(r["result"]["errorCode"], 20006);
            assert!(
                r["result"]["errorInfo"]
                    .as_str()
                    .unwrap()
                    .contains("timed out"),
                "{r}"
            );
        }
        // never retried
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(rcv.requests().len(), 1, "{policy}");
    }
}

#[tokio::test]
async fn standard_actions_allow_rewrite_reject_and_drop() {
    let (s, rcv, id) = hooked("standard", &["message.before_send.person"], json!({})).await;
    let (mut alice, mut bob) = pair(&s).await;
    let new_payload: &'static str = Box::leak(
        format!(
            r#"{{"action":"allow","payload":"{}"}}"#,
            b64(r#"{"type":1,"content":"new"}"#)
        )
        .into_boxed_str(),
    );
    rcv.set(Mode::Answer(200, new_payload));
    alice.send_msg("bob", 1, "s1", "old").await;
    let got = bob.recv(LONG, true).await.unwrap();
    assert_eq!(payload_json(&got["params"]["payload"])["content"], "new");
    let asked = rcv.requests()[0].json();
    assert_eq!(asked["type"], "message.before_send.person");
    assert_eq!(asked["data"]["from_uid"], "alice");
    rcv.set(Mode::Answer(
        200,
        r#"{"action":"reject","code":42,"reason":"spam"}"#,
    ));
    let r = alice.send_msg("bob", 1, "s2", "spam").await;
    assert_eq!(
        (
            r["result"]["errorCode"].as_i64(),
            r["result"]["errorInfo"].as_str()
        ),
        (Some(42), Some("spam"))
    );
    rcv.set(Mode::Answer(200, r#"{"action":"drop"}"#));
    let r = alice.send_msg("bob", 1, "s3", "gone").await;
    assert_eq!(r["result"]["reasonCode"], 1);
    assert!(bob.recv(Duration::from_millis(300), true).await.is_none());
    // every verdict is in the attempt log
    let page = s
        .poll(&format!("/v1/webhooks/endpoints/{id}/attempts"), |p| {
            p["data"].as_array().is_some_and(|a| a.len() == 3)
        })
        .await;
    assert!(page["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["event"] == "message.before_send.person"));
}

#[tokio::test]
async fn a_slow_verdict_holds_its_channel_in_order_and_no_other_channel() {
    let (s, rcv, _) = hooked("tencent", &["C2C.CallbackBeforeSendMsg"], json!({})).await;
    rcv.set(Mode::SlowWhen("slow", Duration::from_millis(600), ALLOW));
    let (mut alice, mut bob) = pair(&s).await;
    let mut carol = s.login_primary("carol", 0).await;
    let mut dave = s.login_primary("dave", 0).await;
    // alice sends a slow message then a fast one; carol's message to dave goes meanwhile
    let slow = alice.send_msg_nowait("bob", 1, "o1", "slow").await;
    let fast = alice.send_msg_nowait("bob", 1, "o2", "fast").await;
    let r = carol.send_msg("dave", 1, "c1", "other channel").await;
    assert_eq!(r["result"]["reasonCode"], 1);
    let got = dave.recv(Duration::from_millis(400), true).await;
    assert!(
        got.is_some(),
        "another channel does not wait for alice's slow verdict"
    );
    let first = bob.recv(LONG, true).await.unwrap();
    let second = bob.recv(LONG, true).await.unwrap();
    assert_eq!(payload_json(&first["params"]["payload"])["content"], "slow");
    assert_eq!(
        payload_json(&second["params"]["payload"])["content"],
        "fast"
    );
    assert_eq!(
        (
            first["params"]["messageSeq"].as_u64(),
            second["params"]["messageSeq"].as_u64()
        ),
        (Some(1), Some(2))
    );
    let (a, b) = (
        alice.wait_result(&slow).await,
        alice.wait_result(&fast).await,
    );
    assert_eq!(
        (
            a["result"]["messageSeq"].as_u64(),
            b["result"]["messageSeq"].as_u64()
        ),
        (Some(1), Some(2))
    );
}

#[tokio::test]
async fn one_endpoint_per_hook() {
    let (s, rcv, _) = hooked("tencent", &["C2C.CallbackBeforeSendMsg"], json!({})).await;
    let (st, body) = s
        .post("/v1/webhooks/endpoints", json!({"url": rcv.url, "flavour": "standard", "events": ["message.before_send.person"]}))
        .await;
    assert_eq!(st, 409, "{body}");
    assert_eq!(body["error"]["code"], "before_send_taken");
    let (st, _) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": rcv.url, "flavour": "standard", "events": ["message.before_send.group"]}),
        )
        .await;
    assert_eq!(st, 201, "the group hook is free");
    let (st, body) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": rcv.url, "flavour": "wukongim", "events": ["message.before_send.group"]}),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("before_send_flavour"))
    );
}

#[tokio::test]
async fn a_test_event_asks_a_before_send_hook_about_a_sample_message_in_its_flavour() {
    for (flavour, name, command) in [
        ("standard", "message.before_send.person", None),
        (
            "tencent",
            "C2C.CallbackBeforeSendMsg",
            Some("C2C.CallbackBeforeSendMsg"),
        ),
        (
            "tencent",
            "message.before_send.group",
            Some("Group.CallbackBeforeSendMsg"),
        ),
    ] {
        let (s, rcv, id) = hooked(flavour, &[name], json!({})).await;
        let (st, attempt) = s
            .post(
                &format!("/v1/webhooks/endpoints/{id}/test"),
                json!({"event": name}),
            )
            .await;
        assert_eq!(st, 200, "{attempt}");
        assert_eq!(attempt["status"], 200, "{attempt}");
        let asked = &rcv.requests()[0];
        match command {
            Some(c) => assert!(
                asked.query.contains(&format!("CallbackCommand={c}")),
                "{}",
                asked.query
            ),
            None => assert_eq!(asked.json()["type"], name),
        }
    }
    // WuKongIM's flavour has no before-send hooks: nothing to test
    let (s, _rcv, id) = hooked("wukongim", &["msg.offline"], json!({})).await;
    let (st, body) = s
        .post(
            &format!("/v1/webhooks/endpoints/{id}/test"),
            json!({"event": "message.before_send.person"}),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("event_not_in_flavour"))
    );
}
