//! The JSON-RPC gateway: login and its failures, protocol errors, ping, kicks, heartbeat, resends.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::util::*;

#[tokio::test]
async fn login_succeeds_with_the_right_token_and_fails_otherwise() {
    let s = TestServer::start().await;
    s.token("alice", "secret-a", 1, 0).await;

    let mut ok = Client::open(&s.ws).await;
    let r = ok.connect("alice", "secret-a", 1).await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    assert!(r["result"]["timeDiff"].is_number(), "{r}");
    assert_eq!(
        r["result"]["serverVersion"], 5,
        "the protocol version, an integer"
    );
    assert!(r["result"].get("serverKey").is_none() && r["result"].get("salt").is_none());

    for (uid, token, flag, what) in [
        ("alice", "wrong", 1, "wrong token"),
        ("alice", "secret-a", 0, "token of another device flag"),
        ("nobody", "secret-a", 1, "unknown user"),
    ] {
        let mut c = Client::open(&s.ws).await;
        let r = c.connect(uid, token, flag).await;
        assert_eq!(r["result"]["reasonCode"], 2, "{what}: {r}");
        let closed = c.closed(LONG).await;
        assert_eq!(closed.code, Some(CloseCode::Policy), "{what}");
        assert!(
            closed.reason.contains("authentication failed"),
            "{what}: {}",
            closed.reason
        );
    }
}

#[tokio::test]
async fn connect_must_come_first_and_within_the_deadline() {
    let s = TestServer::start_with(|c| c.limits.connect_timeout_ms = 200).await;
    let mut silent = Client::open(&s.ws).await;
    let closed = silent.closed(LONG).await;
    assert_eq!(closed.code, Some(CloseCode::Policy));
    assert!(closed.reason.contains("within 200 ms"), "{}", closed.reason);

    let mut early = Client::open(&s.ws).await;
    early
        .send_text(json!({"method": "ping", "id": "1"}).to_string())
        .await;
    let closed = early.closed(LONG).await;
    assert!(
        closed.reason.contains("first request must be connect"),
        "{}",
        closed.reason
    );

    let mut bad = Client::open(&s.ws).await;
    bad.send_text(json!({"method": "connect", "id": "1", "params": {"uid": 5}}).to_string())
        .await;
    let err = bad.next_frame(LONG).await.expect("an error response");
    assert_eq!(err["error"]["code"], -32602, "{err}");
}

#[tokio::test]
async fn malformed_frames_in_text_or_binary_and_unknown_methods_close_with_a_reason() {
    let s = TestServer::start().await;
    use tokio_tungstenite::tungstenite::Message;
    let cases: Vec<(&str, Message)> = vec![
        (
            "malformed JSON-RPC frame",
            Message::Text("{not json".into()),
        ),
        (
            "unknown method",
            Message::Text(r#"{"method":"fly","id":"9"}"#.into()),
        ),
        (
            "malformed JSON-RPC frame",
            Message::Binary(vec![1, 2, 3].into()),
        ),
        ("needs a method", Message::Text(r#"{"id":"3"}"#.into())),
    ];
    for (expect, frame) in cases {
        let mut c = s.login("alice", 0).await;
        use futures_util::SinkExt;
        c.ws.send(frame).await.unwrap();
        let closed = c.closed(LONG).await;
        let disconnect = closed.disconnect.expect("a disconnect notification first");
        assert!(
            disconnect["params"]["reason"]
                .as_str()
                .unwrap()
                .contains(expect),
            "{disconnect}"
        );
        assert!(
            closed.reason.contains(expect),
            "{expect}: {}",
            closed.reason
        );
    }
    // the server still serves
    let mut c = s.login("alice", 0).await;
    let pong = c.request("ping", json!({})).await;
    assert!(is_pong(&pong), "{pong}");
}

#[tokio::test]
async fn invalid_send_params_get_an_error_and_keep_the_connection() {
    let s = TestServer::start().await;
    let mut c = s.login("alice", 0).await;
    let r = c.request("send", json!({"channelId": "bob"})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("channelType"),
        "{r}"
    );
    let r = c.send_msg("bob", 7, "x1", "hi").await;
    assert_eq!(
        r["result"]["reasonCode"], 23,
        "unsupported channel type: {r}"
    );
    let r = c.send_msg("bob", 1, "x2", "hi").await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
}

#[tokio::test]
async fn a_primary_login_kicks_the_same_device_flag_only() {
    let s = TestServer::start().await;
    s.token("alice", "t-web", 1, 1).await;
    s.token("alice", "t-app", 0, 0).await;
    let mut web1 = Client::open(&s.ws).await;
    assert_eq!(
        web1.connect("alice", "t-web", 1).await["result"]["reasonCode"],
        1
    );
    let mut app = Client::open(&s.ws).await;
    assert_eq!(
        app.connect("alice", "t-app", 0).await["result"]["reasonCode"],
        1
    );
    let mut web2 = Client::open(&s.ws).await;
    assert_eq!(
        web2.connect("alice", "t-web", 1).await["result"]["reasonCode"],
        1
    );

    let closed = web1.closed(LONG).await;
    assert_eq!(
        closed.disconnect.expect("disconnect")["params"]["reasonCode"],
        12
    );
    // the app connection and the new web connection live on
    assert!(is_pong(&app.request("ping", json!({})).await));
    assert!(is_pong(&web2.request("ping", json!({})).await));
    let ev = s
        .wait_event("kicked offline", |e| {
            matches!(&e.event, chathook_events::Event::UserOffline(c) if c.reason == chathook_events::PresenceReason::Kicked)
        })
        .await;
    let chathook_events::Event::UserOffline(c) = ev.event else {
        unreachable!()
    };
    assert_eq!((c.uid.as_str(), c.device_flag), ("alice", 1));
}

#[tokio::test]
async fn a_new_primary_token_and_device_quit_close_connections() {
    let s = TestServer::start().await;
    let mut web = s.login("alice", 1).await;
    let mut app = s.login("alice", 0).await;
    s.token("alice", "new-web-token", 1, 1).await;
    let closed = web.closed(LONG).await;
    assert_eq!(closed.disconnect.unwrap()["params"]["reasonCode"], 12);

    let (st, _) = s
        .post(
            "/user/device_quit",
            json!({"uid": "alice", "device_flag": -1}),
        )
        .await;
    assert_eq!(st, 200);
    app.closed(LONG).await;
    s.wait_event("logout", |e| {
        matches!(&e.event, chathook_events::Event::UserOffline(c) if c.reason == chathook_events::PresenceReason::Logout)
    })
    .await;
    // the quit device's token is gone
    let mut again = Client::open(&s.ws).await;
    assert_eq!(
        again.connect("alice", "tok-alice-0", 0).await["result"]["reasonCode"],
        2
    );
}

#[tokio::test]
async fn an_idle_connection_times_out() {
    let s = TestServer::start_with(|c| c.gateway.heartbeat_timeout_ms = 300).await;
    let mut c = s.login("alice", 0).await;
    let closed = c.closed(LONG).await;
    let d = closed.disconnect.expect("disconnect");
    assert!(
        d["params"]["reason"]
            .as_str()
            .unwrap()
            .contains("heartbeat"),
        "{d}"
    );
    s.wait_event("heartbeat offline", |e| {
        matches!(&e.event, chathook_events::Event::UserOffline(c)
            if c.reason == chathook_events::PresenceReason::HeartbeatTimeout && c.total_online_count == 0)
    })
    .await;

    // pings keep a connection alive past the timeout
    let mut pinging = s.login("bob", 0).await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(is_pong(&pinging.request("ping", json!({})).await));
    }
}

#[tokio::test]
async fn an_unacknowledged_recv_is_sent_again_until_acked() {
    let s = TestServer::start_with(|c| {
        c.gateway.ack_timeout_ms = 150;
        c.gateway.max_resends = 3;
    })
    .await;
    let mut alice = s.login("alice", 0).await;
    let mut bob = s.login("bob", 0).await;
    let sent = alice.send_msg("bob", 1, "r-1", "again").await;
    let first = bob.recv(LONG, false).await.expect("first recv");
    let again = bob.recv(LONG, false).await.expect("resent recv");
    assert_eq!(first["params"]["messageId"], again["params"]["messageId"]);
    assert_eq!(first["params"]["messageId"], sent["result"]["messageId"]);
    // acknowledge: no more resends
    let p = &again["params"];
    bob.notify(
        "recvack",
        json!({"messageId": p["messageId"], "messageSeq": p["messageSeq"]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    bob.inbox.clear();
    assert!(
        bob.recv(Duration::from_millis(600), false).await.is_none(),
        "resent after ack"
    );

    // without an ack, resends stop after max_resends
    alice.send_msg("bob", 1, "r-2", "bounded").await;
    let mut copies = 0;
    while bob.recv(Duration::from_millis(500), false).await.is_some() {
        copies += 1;
    }
    assert_eq!(copies, 4, "one send and three resends");
}

#[tokio::test]
async fn a_user_token_cannot_act_as_another_user() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice", 0).await;
    let mut bob = s.login("bob", 0).await;
    // alice's token does not log in as bob
    let mut c = Client::open(&s.ws).await;
    let r = c.connect("bob", "tok-alice-0", 0).await;
    assert_eq!(r["result"]["reasonCode"], 2, "{r}");
    // a send that names another sender is still alice's
    let r = alice
        .request(
            "send",
            json!({"channelId": "bob", "channelType": 1, "clientMsgNo": "spoof-1",
                   "fromUid": "carol", "from_uid": "carol", "payload": {"t": "hi"}}),
        )
        .await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    let got = bob.recv(LONG, true).await.expect("bob gets it");
    assert_eq!(got["params"]["fromUid"], "alice", "{got}");
    assert_eq!(got["params"]["channelId"], "alice", "{got}");
}

#[tokio::test]
async fn a_client_speaking_binary_frames_is_served_in_binary_frames() {
    let s = TestServer::start().await;
    s.token("alice", "t-alice", 0, 0).await;
    s.token("bob", "t-bob", 0, 0).await;
    let mut alice = Client::open_binary(&s.ws).await;
    assert_eq!(
        alice.connect("alice", "t-alice", 0).await["result"]["reasonCode"],
        1
    );
    let mut bob = Client::open_binary(&s.ws).await;
    assert_eq!(
        bob.connect("bob", "t-bob", 0).await["result"]["reasonCode"],
        1
    );
    assert!(is_pong(&alice.request("ping", json!({})).await));
    // two requests in one binary frame, as a byte stream may carry them
    use futures_util::SinkExt;
    let two = concat!(
        r#"{"id":"a","method":"send","params":{"clientMsgNo":"b1","channelId":"bob","channelType":1,"payload":"e30="}}"#,
        r#"{"id":"b","method":"ping"}"#
    );
    alice
        .ws
        .send(tokio_tungstenite::tungstenite::Message::Binary(
            two.as_bytes().to_vec().into(),
        ))
        .await
        .unwrap();
    let sent = alice
        .wait_for(|f| f["id"] == "a")
        .await
        .expect("send result");
    assert_eq!(sent["result"]["reasonCode"], 1, "{sent}");
    assert!(is_pong(
        &alice.wait_for(|f| f["id"] == "b").await.expect("pong")
    ));
    let got = bob.recv(LONG, true).await.expect("bob receives");
    assert_eq!(got["params"]["payload"], "e30=");
    assert_eq!(
        alice.other_kind_frames + bob.other_kind_frames,
        0,
        "answers in binary frames"
    );
}

#[tokio::test]
async fn payload_format_json_keeps_the_raw_json_form_for_old_clients() {
    let s = TestServer::start_with(|c| c.gateway.payload_format = chathook_im::PayloadFormat::Json)
        .await;
    let mut alice = s.login("alice", 0).await;
    let mut bob = s.login("bob", 0).await;
    for (n, payload) in [json!({"type": 1}), json!(b64(r#"{"type":1}"#))]
        .into_iter()
        .enumerate()
    {
        let r = alice
            .request(
                "send",
                json!({"clientMsgNo": format!("j{n}"), "channelId": "bob",
                                    "channelType": 1, "payload": payload}),
            )
            .await;
        assert_eq!(r["result"]["reasonCode"], 1, "{r}");
        let got = bob.recv(LONG, true).await.expect("bob receives");
        assert_eq!(got["params"]["payload"], json!({"type": 1}));
    }
}

#[tokio::test]
async fn recv_carries_header_always_and_setting_as_an_object() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice", 0).await;
    let mut bob = s.login("bob", 0).await;
    let r = alice
        .request(
            "send",
            json!({"clientMsgNo": "s1", "channelId": "bob", "channelType": 1,
                                "payload": b64("{}")}),
        )
        .await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    let plain = bob.recv(LONG, true).await.expect("recv");
    assert_eq!(plain["params"]["header"], json!({}), "{plain}");
    assert!(plain["params"].get("setting").is_none(), "{plain}");
    let r = alice
        .request("send", json!({"clientMsgNo": "s2", "channelId": "bob", "channelType": 1,
                                "header": {"redDot": true}, "setting": {"receipt": true, "topic": true},
                                "payload": b64("{}")}))
        .await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    let flagged = bob.recv(LONG, true).await.expect("recv");
    assert_eq!(flagged["params"]["header"], json!({"redDot": true}));
    assert_eq!(
        flagged["params"]["setting"],
        json!({"receipt": true, "topic": true})
    );
}
