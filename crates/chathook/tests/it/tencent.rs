//! Tencent Cloud Chat compatibility, checked against Tencent's own tools: UserSigs made by the official
//! generator (PyPI `tls-sig-api-v2`, installed by `.ci/run`) log a client in; expired ones, another
//! app's, another user's and badly signed ones are refused with the reason.

use std::process::Command;
use std::time::Duration;

use chathook::config::TencentConfig;
use serde_json::{json, Value};

use crate::util::*;

const APP: u64 = 1_400_000_000;
const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

/// A UserSig from Tencent's generator: `TLSSigAPIv2(app, key).gen_sig(uid, expire)`.
fn user_sig(app: u64, key: &str, uid: &str, expire: i64) -> String {
    let script = format!(
        "import TLSSigAPIv2; print(TLSSigAPIv2.TLSSigAPIv2({app}, {key:?}).gen_sig({uid:?}, {expire}))"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "tls-sig-api-v2 (pip install tls-sig-api-v2) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn tencent_server() -> TestServer {
    TestServer::start_with(|c| {
        c.tencent = TencentConfig {
            sdk_app_id: APP,
            secret_key: Some(KEY.into()),
        }
    })
    .await
}

#[tokio::test]
async fn a_user_sig_from_tencents_generator_logs_in_and_bad_ones_are_refused_with_the_reason() {
    let s = tencent_server().await;
    let good = user_sig(APP, KEY, "alice", 86_400);
    let mut alice = Client::open(&s.ws).await;
    let reply = alice.connect("alice", &good, 0).await;
    assert_eq!(reply["result"]["reasonCode"], 1, "{reply}");
    // a UserSig login is a primary device: a message to alice is not "offline"
    s.rest_send("bob", "alice", 1, "hello").await;
    assert!(alice.recv(LONG, true).await.is_some());

    let cases = [
        (user_sig(APP, KEY, "alice", -60), "alice", "expired"),
        (
            user_sig(APP + 1, KEY, "alice", 86_400),
            "alice",
            "another app",
        ),
        (good.clone(), "mallory", "another user"),
        (
            user_sig(APP, "not the app's key", "alice", 86_400),
            "alice",
            "signature",
        ),
    ];
    for (sig, uid, why) in cases {
        let mut c = Client::open(&s.ws).await;
        let reply = c.connect(uid, &sig, 0).await;
        assert_eq!(reply["result"]["reasonCode"], 2, "{why}: {reply}");
        let reason = reply["result"]["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{why}: {reason}");
        let closed = c.closed(LONG).await;
        assert!(closed.reason.contains(why), "{why}: {closed:?}");
    }
    // something that is no UserSig is a wrong token, as without the Tencent settings
    let mut c = Client::open(&s.ws).await;
    let reply = c.connect("alice", "no-such-token", 0).await;
    assert_eq!(reply["result"]["reasonCode"], 2);
    assert!(reply["result"]["reason"]
        .as_str()
        .unwrap()
        .contains("wrong uid, token"));
}

#[tokio::test]
async fn without_a_secret_key_a_user_sig_is_just_a_wrong_token() {
    let s = TestServer::start().await;
    let mut c = Client::open(&s.ws).await;
    let reply = c
        .connect("alice", &user_sig(APP, KEY, "alice", 86_400), 0)
        .await;
    assert_eq!(reply["result"]["reasonCode"], 2, "{reply}");
}

/// Tencent's success answer.
const OK: &str = r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}"#;

/// `key=value` pairs of a query string.
fn query(q: &str) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn every_after_event_reaches_a_tencent_receiver_in_tencents_words() {
    let s = TestServer::start_with(|c| {
        c.tencent.sdk_app_id = APP;
    })
    .await;
    let (st, _) = s
        .call(
            "PUT",
            "/v1/features",
            Some(json!({"online_status_notify": true, "profile_change_subscription": true, "live_group_member_status": true})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200);
    let rcv = Receiver::start().await;
    rcv.set(Mode::Answer(200, OK));
    let commands = [
        "State.StateChange",
        "C2C.CallbackAfterSendMsg",
        "Group.CallbackAfterSendMsg",
        "Group.CallbackAfterCreateGroup",
        "Group.CallbackAfterNewMemberJoin",
        "Group.CallbackAfterMemberExit",
        "Group.CallbackAfterGroupDestroyed",
        "Group.CallbackOnMemberStateChange",
        "Profile.CallbackPortraitSet",
    ];
    let ep = s
        .endpoint(json!({"url": rcv.url, "flavour": "tencent", "events": commands, "sign_token": "xxxxyyyy"}))
        .await;
    assert_eq!(ep["sign_token"], "xxxxyyyy", "shown once, at creation");
    assert_eq!(ep["events"].as_array().unwrap().len(), 9, "{ep}");

    // presence: a phone, then a tablet with the same device flag that replaces it
    s.token("alice", "t-alice", 0, 1).await;
    let mut phone = Client::open(&s.ws).await;
    let r = phone
        .request(
            "connect",
            json!({"uid": "alice", "token": "t-alice", "deviceFlag": 0, "platform": "iOS"}),
        )
        .await;
    assert_eq!(r["result"]["reasonCode"], 1);
    let mut tablet = Client::open(&s.ws).await;
    let r = tablet
        .request(
            "connect",
            json!({"uid": "alice", "token": "t-alice", "deviceFlag": 0, "platform": "Android"}),
        )
        .await;
    assert_eq!(r["result"]["reasonCode"], 1);
    phone.closed(LONG).await;
    // a message from the tablet, a live group's life, a REST group message, a profile
    tablet.send_msg("bob", 1, "c2c-1", "hello bob").await;
    s.post_ok(
        "/channel",
        json!({"channel_id": "g1", "channel_type": 2, "live": 1, "subscribers": ["alice", "bob"]}),
    )
    .await;
    s.post_ok(
        "/channel/subscriber_add",
        json!({"channel_id": "g1", "channel_type": 2, "subscribers": ["carol"]}),
    )
    .await;
    let carol = s.login("carol", 1).await;
    s.rest_send("alice", "g1", 2, "hello group").await;
    s.post_ok(
        "/channel/subscriber_remove",
        json!({"channel_id": "g1", "channel_type": 2, "subscribers": ["bob"]}),
    )
    .await;
    s.post_ok(
        "/channel/delete",
        json!({"channel_id": "g1", "channel_type": 2}),
    )
    .await;
    let (st, _) = s
        .call(
            "PUT",
            "/v1/users/alice/profile",
            Some(json!({"name": "Alice", "avatar": "https://x/a.png", "custom": {"team": "blue"}})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200);
    drop(carol);
    rcv.wait("every command", LONG, |r| {
        commands
            .iter()
            .all(|c| r.iter().any(|x| x.json()["CallbackCommand"] == *c))
            && r.iter()
                .filter(|x| x.json()["CallbackCommand"] == "State.StateChange")
                .count()
                >= 4
    })
    .await;

    let requests = rcv.requests();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for r in &requests {
        let q = query(&r.query);
        let body = r.json();
        let command = body["CallbackCommand"].as_str().unwrap();
        assert_eq!(q["SdkAppid"], APP.to_string(), "{}", r.query);
        assert_eq!(q["CallbackCommand"], command);
        assert_eq!(q["contenttype"], "json");
        let time: i64 = q["RequestTime"].parse().unwrap();
        assert!((now - time).abs() <= 60, "{}", r.query);
        assert_eq!(
            q["Sign"],
            sha256_hex(&format!("xxxxyyyy{time}")),
            "{}",
            r.query
        );
        assert!(body["EventTime"].is_i64(), "{body}");
        if command == "Group.CallbackOnMemberStateChange" {
            assert!(!q.contains_key("ClientIP") && !q.contains_key("OptPlatform"));
        } else {
            assert!(
                q.contains_key("ClientIP") && q.contains_key("OptPlatform"),
                "{}",
                r.query
            );
        }
    }
    let one = |command: &str| -> Vec<(std::collections::HashMap<String, String>, Value)> {
        requests
            .iter()
            .filter(|x| x.json()["CallbackCommand"] == command)
            .map(|x| (query(&x.query), x.json()))
            .collect()
    };

    let states = one("State.StateChange");
    let alice: Vec<_> = states
        .iter()
        .filter(|(_, b)| b["Info"]["To_Account"] == "alice")
        .collect();
    assert_eq!(
        alice.len(),
        2,
        "the replaced phone is told only as KickedDevice: {states:?}"
    );
    assert_eq!(
        (
            alice[0].0["OptPlatform"].as_str(),
            alice[0].0["ClientIP"].as_str()
        ),
        ("IOS", "127.0.0.1")
    );
    assert_eq!(
        alice[0].1["Info"],
        json!({"Action": "Login", "To_Account": "alice", "Reason": "Register"})
    );
    assert!(alice[0].1.get("KickedDevice").is_none());
    assert_eq!(alice[1].0["OptPlatform"], "Android");
    assert_eq!(alice[1].1["KickedDevice"], json!([{"Platform": "iOS"}]));
    let carol: Vec<_> = states
        .iter()
        .filter(|(_, b)| b["Info"]["To_Account"] == "carol")
        .collect();
    assert_eq!(carol[0].0["OptPlatform"], "Web");
    assert_eq!(
        carol[1].1["Info"],
        json!({"Action": "Disconnect", "To_Account": "carol", "Reason": "LinkClose"})
    );

    let (q, c2c) = &one("C2C.CallbackAfterSendMsg")[0];
    assert_eq!(
        (q["OptPlatform"].as_str(), q["ClientIP"].as_str()),
        ("Android", "127.0.0.1")
    );
    assert_eq!(
        (c2c["From_Account"].as_str(), c2c["To_Account"].as_str()),
        (Some("alice"), Some("bob"))
    );
    assert_eq!(c2c["MsgId"], "c2c-1");
    assert_eq!(c2c["MsgSeq"], 1);
    assert!(c2c["MsgRandom"].is_u64() && c2c["MsgTime"].is_i64());
    assert_eq!(
        c2c["MsgKey"],
        format!("{}_{}_{}", c2c["MsgSeq"], c2c["MsgRandom"], c2c["MsgTime"])
    );
    assert_eq!(
        (
            c2c["OnlineOnlyFlag"].as_u64(),
            c2c["SendMsgResult"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(
        c2c["MsgBody"],
        json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hello bob"}}])
    );
    assert_eq!(c2c["CloudCustomData"], "");

    let (q, group) = &one("Group.CallbackAfterSendMsg")[0];
    assert_eq!(q["OptPlatform"], "RESTAPI");
    assert_eq!(
        (group["GroupId"].as_str(), group["From_Account"].as_str()),
        (Some("g1"), Some("alice"))
    );
    assert_eq!(group["MsgSeq"], 1);
    assert!(group["Random"].is_u64() && group["Type"].is_string());
    assert_eq!(group["MsgBody"][0]["MsgContent"]["Text"], "hello group");

    let (_, created) = &one("Group.CallbackAfterCreateGroup")[0];
    assert_eq!(created["GroupId"], "g1");
    assert_eq!(
        created["MemberList"],
        json!([{"Member_Account": "alice"}, {"Member_Account": "bob"}])
    );
    let (_, joined) = &one("Group.CallbackAfterNewMemberJoin")[0];
    assert_eq!(
        joined["NewMemberList"],
        json!([{"Member_Account": "carol"}])
    );
    let (_, exited) = &one("Group.CallbackAfterMemberExit")[0];
    assert_eq!(exited["ExitMemberList"], json!([{"Member_Account": "bob"}]));
    assert!(exited["ExitType"].is_string());
    let (_, destroyed) = &one("Group.CallbackAfterGroupDestroyed")[0];
    assert_eq!(destroyed["GroupId"], "g1");
    let live = one("Group.CallbackOnMemberStateChange");
    assert!(
        live.iter().any(|(_, b)| b["EventType"] == "Online"
            && b["MemberList"] == json!([{"Member_Account": "carol"}])),
        "{live:?}"
    );
    let (_, portrait) = &one("Profile.CallbackPortraitSet")[0];
    assert_eq!(portrait["Operator_Account"], "alice");
    assert!(portrait["ProfileItem"]
        .as_array()
        .unwrap()
        .contains(&json!({"Tag": "Tag_Profile_IM_Nick", "Value": "Alice"})));
}

#[tokio::test]
async fn a_tencent_callback_succeeds_only_on_http_200_with_error_code_0() {
    let s = TestServer::start_with(|c| {
        crate::webhooks::fast_retries(c);
        c.tencent.sdk_app_id = APP;
    })
    .await;
    let rcv = Receiver::start().await;
    rcv.set(Mode::Answer(
        200,
        r#"{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"busy"}"#,
    ));
    let ep = s
        .endpoint(
            json!({"url": rcv.url, "flavour": "tencent", "events": ["C2C.CallbackAfterSendMsg"]}),
        )
        .await;
    let id = ep["id"].as_str().unwrap();
    s.rest_send("alice", "bob", 1, "x").await;
    rcv.wait("the first attempt", LONG, |r| !r.is_empty()).await;
    rcv.set(Mode::Status(200));
    rcv.wait("the second attempt", LONG, |r| r.len() >= 2).await;
    rcv.set(Mode::Answer(200, OK));
    rcv.wait("the third attempt", LONG, |r| r.len() >= 3).await;
    let path = format!("/v1/webhooks/endpoints/{id}/attempts");
    let page = s
        .poll(&path, |p| {
            p["data"].as_array().is_some_and(|a| a.len() >= 3)
        })
        .await;
    let attempts = page["data"].as_array().unwrap();
    // newest first
    assert_eq!(attempts[0]["success"], true, "{page}");
    assert_eq!(attempts[1]["success"], false);
    assert!(
        attempts[1]["error"].as_str().unwrap().contains("not JSON"),
        "{page}"
    );
    assert_eq!(attempts[2]["success"], false);
    assert!(
        attempts[2]["error"]
            .as_str()
            .unwrap()
            .contains("ErrorCode 1 (busy)"),
        "{page}"
    );
    // the endpoint named C2C's after-send alone: group messages are not its
    assert_eq!(ep["message_channel_types"], json!([1]));
    s.group("g", &["alice", "bob"]).await;
    s.rest_send("alice", "g", 2, "to the group").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rcv.requests().len(),
        3,
        "nothing after the success, and no group message"
    );
    assert!(
        !rcv.requests()[0].query.contains("Sign="),
        "no token, no Sign"
    );
}
