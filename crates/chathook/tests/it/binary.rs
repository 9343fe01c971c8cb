//! WuKongIM's binary protocol on the WebSocket port and on the TCP port (told apart from JSON-RPC by
//! the first byte), every scenario on both: the handshake by protocol version, encrypted SEND and RECV
//! beside JSON-RPC clients in the same channels, msgKey checks, refusals and kicks as CONNACK and
//! DISCONNECT, the byte stream, encryption off. And JSON-RPC on the TCP port.

use std::time::Duration;

use chathook_wkproto::{self as wk, Packet};
use serde_json::json;

use crate::util::Transport;
use crate::util::*;

const TEXT: &[u8] = br#"{"type":1,"content":"hi"}"#;

async fn binary_and_json_rpc_clients_share_one_to_one_and_group_channels(t: Transport) {
    let s = TestServer::start().await;
    let mut ann = s.login_binary_on(t, "ann", 1, 2).await;
    let mut ben = s.login("ben", 0).await;
    // binary to JSON-RPC
    let ack = ann.send("ben", 1, TEXT).await;
    assert_eq!((ack.reason, ack.message_seq), (1, 1), "{ack:?}");
    assert!(
        ann.recv(SHORT, true).await.is_none(),
        "the sender's own connection gets no copy"
    );
    let got = ben.recv(LONG, true).await.expect("ben receives");
    assert_eq!(got["params"]["channelId"], "ann");
    assert_eq!(got["params"]["messageId"], ack.message_id.to_string());
    assert_eq!(
        payload_json(&got["params"]["payload"]),
        json!({"type": 1, "content": "hi"})
    );
    // JSON-RPC to binary: the same message as the JSON-RPC side saw it
    let sent = ben.send_msg("ann", 1, "b-1", "hello ann").await;
    let got = ann.recv(LONG, true).await.expect("ann receives");
    assert_eq!(
        got.recv.message_id.to_string(),
        sent["result"]["messageId"].as_str().unwrap()
    );
    assert_eq!(got.recv.message_seq, 2);
    assert_eq!(
        (got.recv.from_uid.as_str(), got.recv.channel_id.as_str()),
        ("ben", "ben")
    );
    assert_eq!(got.recv.channel_type, 1);
    assert_eq!(got.recv.client_msg_no, "b-1");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&got.payload).unwrap(),
        json!({"type": 1, "content": "hello ann"})
    );
    // a group with both kinds of member
    s.group("g1", &["ann", "ben", "cid"]).await;
    let mut cid = s.login_binary_on(t, "cid", 0, 5).await;
    let ack = ann.send("g1", 2, TEXT).await;
    assert_eq!(ack.reason, 1);
    let at_cid = cid
        .recv(LONG, true)
        .await
        .expect("cid (binary, v5) receives");
    let at_ben = ben.recv(LONG, true).await.expect("ben (JSON-RPC) receives");
    assert_eq!(at_cid.recv.message_id, ack.message_id);
    assert_eq!(at_ben["params"]["messageId"], ack.message_id.to_string());
    assert_eq!(
        (at_cid.recv.channel_id.as_str(), at_cid.recv.channel_type),
        ("g1", 2)
    );
    assert_eq!(at_cid.payload, TEXT);
    assert_eq!(
        ann.multi_packet_messages + cid.multi_packet_messages,
        0,
        "one packet per message"
    );
}

async fn the_connack_follows_the_connect_version(t: Transport) {
    let s = TestServer::start_with(|c| c.node_id = 7).await;
    for (version, server_version, node_id) in [
        (2u8, None, None),
        (3, None, None),
        (4, Some(4u8), Some(7u64)),
        (5, Some(5), Some(7)),
        (9, Some(5), Some(7)),
    ] {
        let c = s
            .login_binary_on(t, &format!("v{version}"), 0, version)
            .await;
        assert_eq!(
            c.connack.server_version, server_version,
            "version {version}"
        );
        assert_eq!(c.connack.node_id, node_id, "version {version}");
        assert_eq!(c.connack.salt.len(), 16);
        assert!(
            c.connack.time_diff > 0,
            "server clock minus the client's 2023 clock"
        );
    }
}

async fn a_send_whose_msg_key_does_not_match_is_answered_reason_9_and_the_connection_stays(
    t: Transport,
) {
    let s = TestServer::start().await;
    let mut ann = s.login_binary_on(t, "ann", 1, 2).await;
    let mut ben = s.login_binary_on(t, "ben", 1, 2).await;
    let mut packet = ann.send_of("ben", 1, TEXT);
    let Packet::Send(send) = &mut packet else {
        unreachable!()
    };
    let seq = send.client_seq;
    send.msg_key = "0".repeat(32);
    ann.write(&packet).await;
    let ack = ann.sendack(seq).await;
    assert_eq!(ack.reason, 9, "{ack:?}");
    assert!(ben.recv(SHORT, true).await.is_none(), "nothing delivered");
    assert!(ann.ping().await, "the connection stays");
    assert_eq!(ann.send("ben", 1, TEXT).await.reason, 1);
}

async fn a_refused_connect_gets_a_connack_with_its_reason_before_the_close(t: Transport) {
    let s = TestServer::start().await;
    s.token("ann", "right", 1, 0).await;
    let mut c = BinClient::connect_to(s.dial(t), "ann", "wrong", 1, 2, true).await;
    assert_eq!(c.connack.reason, 2, "auth fail");
    assert!(c.connack.server_key.is_empty() && c.connack.salt.is_empty());
    let closed = c.closed(LONG).await;
    if t == Transport::Ws {
        assert!(
            closed.reason.contains("authentication failed"),
            "{closed:?}"
        );
    }
    // version 5: the refusal keeps its version's layout
    let c = BinClient::connect_to(s.dial(t), "ann", "wrong", 1, 5, true).await;
    assert_eq!((c.connack.reason, c.connack.server_version), (2, Some(5)));
}

async fn a_primary_login_elsewhere_kicks_with_disconnect_reason_12(t: Transport) {
    let s = TestServer::start().await;
    s.token("ann", "tk", 1, 1).await;
    let mut first = BinClient::connect_to(s.dial(t), "ann", "tk", 1, 2, true).await;
    assert_eq!(first.connack.reason, 1);
    let second = BinClient::connect_to(s.dial(t), "ann", "tk", 1, 2, true).await;
    assert_eq!(second.connack.reason, 1);
    let closed = first.closed(LONG).await;
    let d = closed.disconnect.expect("a DISCONNECT before the close");
    assert_eq!(d.reason, 12, "{d:?}");
}

async fn packets_split_across_messages_and_packed_into_one_are_both_read(t: Transport) {
    let s = TestServer::start().await;
    let mut ann = s.login_binary_on(t, "ann", 1, 2).await;
    let mut ben = s.login_binary_on(t, "ben", 1, 2).await;
    // one SEND in three pieces
    let packet = ann.send_of("ben", 1, TEXT);
    let mut bytes = Vec::new();
    wk::encode(&packet, 2, &mut bytes).unwrap();
    for piece in [&bytes[..1], &bytes[1..2], &bytes[2..]] {
        ann.write_raw(piece.to_vec()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ann.sendack(1).await.reason, 1);
    // two SENDs and a PING in one message
    let mut bytes = Vec::new();
    for p in [
        ann.send_of("ben", 1, TEXT),
        ann.send_of("ben", 1, TEXT),
        Packet::Ping,
    ] {
        wk::encode(&p, 2, &mut bytes).unwrap();
    }
    ann.write_raw(bytes).await;
    assert_eq!(ann.sendack(2).await.reason, 1);
    assert_eq!(ann.sendack(3).await.reason, 1);
    assert!(ann
        .wait_for(LONG, |p| matches!(p, Packet::Pong))
        .await
        .is_some());
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(ben.recv(LONG, true).await.expect("a RECV").recv.message_seq);
    }
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(ben.multi_packet_messages, 0, "each RECV its own message");
}

async fn with_encryption_off_payloads_travel_plain(t: Transport) {
    let s = TestServer::start_with(|c| c.gateway.encryption = false).await;
    s.token("ann", "a", 1, 0).await;
    s.token("ben", "b", 1, 0).await;
    let mut ann = BinClient::connect_to(s.dial(t), "ann", "a", 1, 3, false).await;
    let mut ben = BinClient::connect_to(s.dial(t), "ben", "b", 1, 3, false).await;
    assert_eq!((ann.connack.reason, ann.connack.salt.as_str()), (1, ""));
    assert_eq!(ann.send("ben", 1, TEXT).await.reason, 1);
    let got = ben.recv(LONG, true).await.expect("ben receives");
    assert_eq!(
        (got.recv.payload.as_slice(), got.recv.msg_key.as_str()),
        (TEXT, "")
    );
}

async fn garbage_after_connect_ends_the_connection_with_a_reason(t: Transport) {
    let s = TestServer::start().await;
    let mut ann = s.login_binary_on(t, "ann", 1, 2).await;
    // packet type 15 does not exist
    ann.write_raw(vec![0xf0, 0x00]).await;
    let closed = ann.closed(LONG).await;
    let d = closed.disconnect.expect("a DISCONNECT");
    assert!(d.reason_text.contains("packet type 15"), "{d:?}");
    if t == Transport::Ws {
        assert_eq!(closed.code, Some(1008));
    }
    // a length over the frame limit, before any of its bytes
    let s = TestServer::start_with(|c| c.limits.max_frame_bytes = 1024).await;
    let mut ben = s.login_binary_on(t, "ben", 1, 2).await;
    ben.write_raw(vec![0x30, 0xd0, 0x0f]).await;
    let closed = ben.closed(LONG).await;
    let why = closed
        .disconnect
        .map(|d| d.reason_text)
        .unwrap_or(closed.reason);
    assert!(why.contains("over the limit of 1024"), "{why}");
}

/// Each scenario above, once over WebSocket and once over TCP.
macro_rules! on_both_links {
    ($($name:ident),* $(,)?) => {
        mod ws {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::util::Transport::Ws).await
            })*
        }
        mod tcp {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::util::Transport::Tcp).await
            })*
        }
    };
}

on_both_links!(
    binary_and_json_rpc_clients_share_one_to_one_and_group_channels,
    the_connack_follows_the_connect_version,
    a_send_whose_msg_key_does_not_match_is_answered_reason_9_and_the_connection_stays,
    a_refused_connect_gets_a_connack_with_its_reason_before_the_close,
    a_primary_login_elsewhere_kicks_with_disconnect_reason_12,
    packets_split_across_messages_and_packed_into_one_are_both_read,
    with_encryption_off_payloads_travel_plain,
    garbage_after_connect_ends_the_connection_with_a_reason,
);

#[tokio::test]
async fn json_rpc_over_tcp_is_values_back_to_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    s.token("ann", "tk", 0, 0).await;
    let mut ben = s.login("ben", 0).await;
    let mut tcp = tokio::net::TcpStream::connect(&s.tcp).await.unwrap();
    // connect and a ping in one write, then a send split over two
    tcp.write_all(br#"{"jsonrpc":"2.0","id":"1","method":"connect","params":{"uid":"ann","token":"tk","deviceFlag":0}} {"id":"2","method":"ping"}"#)
        .await
        .unwrap();
    let send = format!(
        r#"{{"id":"3","method":"send","params":{{"channelId":"ben","channelType":1,"clientMsgNo":"t-1","payload":"{}"}}}}"#,
        b64(r#"{"type":1,"content":"over tcp"}"#)
    );
    let (a, b) = send.as_bytes().split_at(20);
    tcp.write_all(a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(b).await.unwrap();
    let mut got = Vec::new();
    let mut answers: Vec<serde_json::Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + LONG;
    while answers.len() < 3 {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .expect("answers")
            .unwrap();
        assert!(n > 0, "the server closed: {answers:?}");
        got.extend_from_slice(&buf[..n]);
        answers = serde_json::Deserializer::from_slice(&got)
            .into_iter::<serde_json::Value>()
            .map_while(Result::ok)
            .collect();
    }
    assert_eq!(answers[0]["result"]["reasonCode"], 1, "{answers:?}");
    assert!(is_pong(&answers[1]), "{answers:?}");
    assert_eq!(answers[2]["result"]["messageSeq"], 1, "{answers:?}");
    let at_ben = ben.recv(LONG, true).await.expect("ben receives");
    assert_eq!(
        payload_json(&at_ben["params"]["payload"])["content"],
        "over tcp"
    );
}

#[tokio::test]
async fn route_names_the_tcp_port() {
    let s = TestServer::start().await;
    let (st, route) = s.call("GET", "/route?uid=ann", None, Some(ADMIN)).await;
    assert_eq!(st, 200, "{route}");
    assert_eq!(route["tcp_addr"], s.tcp, "{route}");
    assert_eq!(route["ws_addr"], s.ws, "{route}");
}

#[tokio::test]
async fn the_tcp_port_closes_a_silent_connection_at_the_connect_timeout_and_holds_the_connection_cap(
) {
    use tokio::io::AsyncReadExt;
    let s = TestServer::start_with(|c| {
        c.limits.connect_timeout_ms = 300;
        c.limits.max_connections = 1;
    })
    .await;
    // silent: closed (read returns 0) after the connect timeout
    let mut silent = tokio::net::TcpStream::connect(&s.tcp).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(LONG, silent.read(&mut buf))
        .await
        .expect("closed by the server")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    // one session at most: a second connection is closed while the first holds its place
    let _ann = s.login_binary_on(Transport::Tcp, "ann", 1, 2).await;
    let mut second = tokio::net::TcpStream::connect(&s.tcp).await.unwrap();
    let n = tokio::time::timeout(LONG, second.read(&mut buf))
        .await
        .expect("closed by the server")
        .unwrap_or(0);
    assert_eq!(n, 0, "no room for a second connection");
}

#[tokio::test]
async fn binary_sends_pass_the_before_send_hook_and_reach_the_webhooks() {
    let s = TestServer::start().await;
    let hook = Receiver::start().await;
    hook.set(Mode::Answer(
        200,
        r#"{"action":"reject","code":42,"reason":"spam"}"#,
    ));
    s.endpoint(json!({"url": hook.url, "events": ["message.before_send.person"]}))
        .await;
    let after = Receiver::start().await;
    s.endpoint(json!({"url": after.url, "events": ["message.sent"]}))
        .await;
    let mut ann = s.login_binary("ann", 1, 2).await;
    let mut ben = s.login("ben", 0).await;
    let refused = ann.send("ben", 1, br#"{"type":1,"content":"spam"}"#).await;
    assert_ne!(refused.reason, 1, "rejected by the hook: {refused:?}");
    assert!(ben.recv(SHORT, true).await.is_none());
    hook.set(Mode::Answer(200, r#"{"action":"allow"}"#));
    let ack = ann.send("ben", 1, TEXT).await;
    assert_eq!(ack.reason, 1);
    assert!(ben.recv(LONG, true).await.is_some());
    after
        .wait("message.sent from the binary client", LONG, |reqs| {
            reqs.iter().any(|r| {
                let v = r.json();
                v["type"] == "message.sent"
                    && v["data"]["from_uid"] == "ann"
                    && v["data"]["message_id"] == ack.message_id
            })
        })
        .await;
    let asked = hook.requests()[0].json();
    assert_eq!(asked["data"]["from_uid"], "ann", "{asked}");
}

#[tokio::test]
async fn the_senders_other_devices_get_a_copy_without_the_red_dot() {
    let s = TestServer::start().await;
    let mut ann_web = s.login_binary("ann", 1, 2).await;
    let mut ann_pc = s.login_binary("ann", 2, 5).await;
    let mut ann_app = s.login("ann", 0).await;
    let mut ben = s.login_binary("ben", 1, 2).await;
    // the SDK sets the red dot on every SEND
    let ack = ann_web.send("ben", 1, TEXT).await;
    let at_ben = ben.recv(LONG, true).await.expect("ben receives");
    assert!(
        at_ben.recv.flags.red_dot,
        "the recipient's copy has the red dot"
    );
    let at_pc = ann_pc.recv(LONG, true).await.expect("ann's pc gets a copy");
    assert_eq!(
        (at_pc.recv.message_id, at_pc.recv.channel_id.as_str()),
        (ack.message_id, "ben")
    );
    assert!(!at_pc.recv.flags.red_dot, "not on the sender's own copy");
    let at_app = ann_app
        .recv(LONG, true)
        .await
        .expect("ann's app gets a copy");
    assert_eq!(at_app["params"]["header"].get("redDot"), None, "{at_app}");
    assert!(
        ann_web.recv(SHORT, true).await.is_none(),
        "not the sending connection"
    );
}

#[tokio::test]
async fn a_banned_user_is_told_disconnect_19_and_refused_with_connack_19() {
    let s = TestServer::start().await;
    let mut ann = s.login_binary("ann", 1, 2).await;
    s.post_ok(
        "/channel/info",
        json!({"channel_id": "ann", "channel_type": 1, "ban": 1}),
    )
    .await;
    let closed = ann.closed(LONG).await;
    assert_eq!(
        closed.disconnect.as_ref().map(|d| d.reason),
        Some(19),
        "{closed:?}"
    );
    let again = BinClient::connect(&s.ws, "ann", "tok-ann-1", 1, 2, true).await;
    assert_eq!(again.connack.reason, 19);
}

#[tokio::test]
async fn a_binary_login_is_reported_to_tencent_with_the_platform_of_its_device_flag() {
    let s = TestServer::start_with(|c| c.tencent.sdk_app_id = 1_400_000_000).await;
    let rcv = Receiver::start().await;
    rcv.set(Mode::Answer(
        200,
        r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}"#,
    ));
    s.endpoint(json!({"url": rcv.url, "flavour": "tencent", "events": ["State.StateChange"]}))
        .await;
    let _web = s.login_binary("ann", 1, 2).await;
    let _app = s.login_binary("ben", 0, 5).await;
    rcv.wait("two logins", LONG, |reqs| reqs.len() >= 2).await;
    let platform = |uid: &str| {
        rcv.requests()
            .iter()
            .find(|r| r.json()["Info"]["To_Account"] == uid)
            .map(|r| {
                url::form_urlencoded::parse(r.query.as_bytes())
                    .find(|(k, _)| k == "OptPlatform")
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    };
    assert_eq!(platform("ann"), "Web", "device flag 1");
    assert_eq!(
        platform("ben"),
        "Unknown",
        "device flag 0 does not say which"
    );
}

#[tokio::test]
async fn a_system_send_reaches_a_binary_client_from_uid_empty() {
    let s = TestServer::start().await;
    let mut ben = s.login_binary("ben", 1, 2).await;
    let (st, body) = s
        .post(
            "/message/send",
            json!({"from_uid": "", "channel_id": "ben", "channel_type": 1, "payload": b64(r#"{"type":1,"content":"sys"}"#)}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let got = ben.recv(LONG, true).await.expect("ben receives");
    assert_eq!(got.recv.from_uid, "", "{:?}", got.recv);
    assert_eq!(got.payload, br#"{"type":1,"content":"sys"}"#);
}

/// Logs `uid` in on the web flag from `device`, with the token registered at `level`.
async fn on_device(s: &TestServer, uid: &str, device: &str) -> BinClient {
    let c = BinClient::connect_device(Dial::Ws(&s.ws), uid, "tk", 1, 2, true, device).await;
    assert_eq!(c.connack.reason, 1, "{:?}", c.connack);
    c
}

#[tokio::test]
async fn a_primary_login_tells_other_devices_and_silently_replaces_its_own_older_connection() {
    let s = TestServer::start().await;
    s.token("ann", "tk", 1, 1).await;
    let mut a = on_device(&s, "ann", "device-a").await;
    let mut b = on_device(&s, "ann", "device-b").await;
    let closed = a.closed(LONG).await;
    assert_eq!(
        closed.disconnect.map(|d| d.reason),
        Some(12),
        "another device: told"
    );
    // the same device again: its older connection goes without a DISCONNECT
    let mut b_again = on_device(&s, "ann", "device-b").await;
    let closed = b.closed(LONG).await;
    assert!(
        closed.disconnect.is_none(),
        "its own device: not told: {closed:?}"
    );
    assert!(b_again.ping().await, "the newest stays");
}

#[tokio::test]
async fn a_secondary_login_replaces_only_its_own_devices_older_connection() {
    let s = TestServer::start().await;
    s.token("ann", "tk", 1, 0).await;
    let mut a = on_device(&s, "ann", "device-a").await;
    let mut b = on_device(&s, "ann", "device-b").await;
    assert!(a.ping().await && b.ping().await, "two devices side by side");
    let _a_again = on_device(&s, "ann", "device-a").await;
    let closed = a.closed(LONG).await;
    assert!(closed.disconnect.is_none(), "{closed:?}");
    assert!(b.ping().await, "the other device stays");
}
