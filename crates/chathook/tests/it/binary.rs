//! WuKongIM's binary protocol on the WebSocket port (told apart from JSON-RPC by the first byte): the
//! handshake by protocol version, encrypted SEND and RECV beside JSON-RPC clients in the same channels,
//! msgKey checks, refusals and kicks as CONNACK and DISCONNECT, the byte stream, encryption off.

use std::time::Duration;

use chathook_wkproto::{self as wk, Packet};
use serde_json::json;

use crate::util::*;

const TEXT: &[u8] = br#"{"type":1,"content":"hi"}"#;

#[tokio::test]
async fn binary_and_json_rpc_clients_share_one_to_one_and_group_channels() {
    let s = TestServer::start().await;
    let mut ann = s.login_binary("ann", 1, 2).await;
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
    let mut cid = s.login_binary("cid", 0, 5).await;
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

#[tokio::test]
async fn the_connack_follows_the_connect_version() {
    let s = TestServer::start_with(|c| c.node_id = 7).await;
    for (version, server_version, node_id) in [
        (2u8, None, None),
        (3, None, None),
        (4, Some(4u8), Some(7u64)),
        (5, Some(5), Some(7)),
        (9, Some(5), Some(7)),
    ] {
        let c = s.login_binary(&format!("v{version}"), 0, version).await;
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

#[tokio::test]
async fn a_send_whose_msg_key_does_not_match_is_answered_reason_9_and_the_connection_stays() {
    let s = TestServer::start().await;
    let mut ann = s.login_binary("ann", 1, 2).await;
    let mut ben = s.login_binary("ben", 1, 2).await;
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

#[tokio::test]
async fn a_refused_connect_gets_a_connack_with_its_reason_before_the_close() {
    let s = TestServer::start().await;
    s.token("ann", "right", 1, 0).await;
    let mut c = BinClient::connect(&s.ws, "ann", "wrong", 1, 2, true).await;
    assert_eq!(c.connack.reason, 2, "auth fail");
    assert!(c.connack.server_key.is_empty() && c.connack.salt.is_empty());
    let closed = c.closed(LONG).await;
    assert!(
        closed.reason.contains("authentication failed"),
        "{closed:?}"
    );
    // version 5: the refusal keeps its version's layout
    let c = BinClient::connect(&s.ws, "ann", "wrong", 1, 5, true).await;
    assert_eq!((c.connack.reason, c.connack.server_version), (2, Some(5)));
}

#[tokio::test]
async fn a_primary_login_elsewhere_kicks_with_disconnect_reason_12() {
    let s = TestServer::start().await;
    s.token("ann", "tk", 1, 1).await;
    let mut first = BinClient::connect(&s.ws, "ann", "tk", 1, 2, true).await;
    assert_eq!(first.connack.reason, 1);
    let second = BinClient::connect(&s.ws, "ann", "tk", 1, 2, true).await;
    assert_eq!(second.connack.reason, 1);
    let closed = first.closed(LONG).await;
    let d = closed.disconnect.expect("a DISCONNECT before the close");
    assert_eq!(d.reason, 12, "{d:?}");
}

#[tokio::test]
async fn packets_split_across_messages_and_packed_into_one_are_both_read() {
    let s = TestServer::start().await;
    let mut ann = s.login_binary("ann", 1, 2).await;
    let mut ben = s.login_binary("ben", 1, 2).await;
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

#[tokio::test]
async fn with_encryption_off_payloads_travel_plain() {
    let s = TestServer::start_with(|c| c.gateway.encryption = false).await;
    s.token("ann", "a", 1, 0).await;
    s.token("ben", "b", 1, 0).await;
    let mut ann = BinClient::connect(&s.ws, "ann", "a", 1, 3, false).await;
    let mut ben = BinClient::connect(&s.ws, "ben", "b", 1, 3, false).await;
    assert_eq!((ann.connack.reason, ann.connack.salt.as_str()), (1, ""));
    assert_eq!(ann.send("ben", 1, TEXT).await.reason, 1);
    let got = ben.recv(LONG, true).await.expect("ben receives");
    assert_eq!(
        (got.recv.payload.as_slice(), got.recv.msg_key.as_str()),
        (TEXT, "")
    );
}

#[tokio::test]
async fn garbage_after_connect_ends_the_connection_with_a_reason() {
    let s = TestServer::start().await;
    let mut ann = s.login_binary("ann", 1, 2).await;
    // packet type 15 does not exist
    ann.write_raw(vec![0xf0, 0x00]).await;
    let closed = ann.closed(LONG).await;
    let d = closed.disconnect.expect("a DISCONNECT");
    assert!(d.reason_text.contains("packet type 15"), "{d:?}");
    assert_eq!(closed.code, Some(1008));
    // a length over the frame limit, before any of its bytes
    let s = TestServer::start_with(|c| c.limits.max_frame_bytes = 1024).await;
    let mut ben = s.login_binary("ben", 1, 2).await;
    ben.write_raw(vec![0x30, 0xd0, 0x0f]).await;
    let closed = ben.closed(LONG).await;
    assert!(
        closed.reason.contains("over the limit of 1024"),
        "{closed:?}"
    );
}
