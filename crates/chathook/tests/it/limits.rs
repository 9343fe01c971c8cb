//! Every configurable limit, on both sides of its edge.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::util::*;

#[tokio::test]
async fn frame_size_limit() {
    let s = TestServer::start_with(|c| c.limits.max_frame_bytes = 2048).await;
    let mut c = s.login("alice", 0).await;
    let fits = "x".repeat(1500);
    assert_eq!(
        c.send_msg("bob", 1, "f-1", &fits).await["result"]["reasonCode"],
        1
    );
    let over = "x".repeat(2100);
    c.send_text(
        json!({"method": "send", "id": "big", "params": {"channelId": "bob", "channelType": 1,
        "clientMsgNo": "f-2", "payload": {"c": over}}})
        .to_string(),
    )
    .await;
    let closed = c.closed(LONG).await;
    assert_eq!(closed.code, Some(CloseCode::Size));
    assert!(
        closed.reason.contains("max_frame_bytes"),
        "{}",
        closed.reason
    );
}

#[tokio::test]
async fn payload_size_limit() {
    let s = TestServer::start_with(|c| c.limits.max_payload_bytes = 100).await;
    let mut c = s.login("alice", 0).await;
    // {"c":"..."} is 8 bytes around the content
    let r = c
        .request(
            "send",
            json!({"clientMsgNo": "p1", "channelId": "bob", "channelType": 1,
        "payload": {"c": "x".repeat(92)}}),
        )
        .await;
    assert_eq!(r["result"]["reasonCode"], 1, "exactly at the limit: {r}");
    let r = c
        .request(
            "send",
            json!({"clientMsgNo": "p2", "channelId": "bob", "channelType": 1,
        "payload": {"c": "x".repeat(93)}}),
        )
        .await;
    assert_eq!(r["result"]["reasonCode"], 9, "{r}");
    assert_eq!(r["result"]["code"], "payload_too_large");
    let (st, body) = s
        .post(
            "/message/send",
            json!({"from_uid": "a", "channel_id": "b", "channel_type": 1,
        "payload": b64(&"y".repeat(101))}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(body["field"], "payload");
    let (st, body) = s
        .post(
            "/message/send",
            json!({"from_uid": "a", "channel_id": "b", "channel_type": 1,
        "payload": ""}),
        )
        .await;
    assert_eq!((st, body["code"].as_str()), (400, Some("payload_empty")));
}

#[tokio::test]
async fn client_msg_no_and_channel_id_lengths_are_limited_on_both_paths() {
    let s = TestServer::start_with(|c| c.limits.max_client_msg_no_bytes = 40).await;
    let mut c = s.login("alice", 0).await;
    let send = |no: String, channel: String| json!({"clientMsgNo": no, "channelId": channel, "channelType": 1, "payload": {"c": 1}});
    let r = c.request("send", send("n".repeat(40), "bob".into())).await;
    assert_eq!(r["result"]["reasonCode"], 1, "exactly at the limit: {r}");
    let r = c.request("send", send("n".repeat(41), "bob".into())).await;
    assert_eq!(r["result"]["reasonCode"], 9, "{r}");
    assert_eq!(r["result"]["code"], "field_too_long", "{r}");
    let r = c
        .request("send", send("ok-1".into(), "u".repeat(129)))
        .await;
    assert_eq!(r["result"]["reasonCode"], 16, "{r}");
    let (st, body) = s
        .post(
            "/message/send",
            json!({"from_uid": "alice", "channel_id": "bob", "channel_type": 1,
                   "client_msg_no": "m".repeat(41), "payload": b64("{}")}),
        )
        .await;
    assert_eq!(
        (st, body["code"].as_str(), body["field"].as_str()),
        (400, Some("field_too_long"), Some("client_msg_no")),
        "{body}"
    );
    let (st, body) = s
        .post(
            "/message/send",
            json!({"from_uid": "alice", "channel_id": "g".repeat(129), "channel_type": 2,
                   "payload": b64("{}")}),
        )
        .await;
    assert_eq!(
        (st, body["field"].as_str()),
        (400, Some("channel_id")),
        "{body}"
    );
    // only the message at the limit was stored
    let page = s.sync("bob", "alice", 1, (0, 0), 100, 0).await;
    assert_eq!(seqs(&page), vec![1], "{page}");
}

#[tokio::test]
async fn sends_per_second_per_connection() {
    let s = TestServer::start_with(|c| c.limits.sends_per_sec = 5).await;
    let mut c = s.login("alice", 0).await;
    let mut codes = Vec::new();
    for i in 0..7 {
        codes.push(
            c.send_msg("bob", 1, &format!("r{i}"), "x").await["result"]["reasonCode"]
                .as_u64()
                .unwrap(),
        );
    }
    assert_eq!(&codes[..5], &[1, 1, 1, 1, 1], "the burst passes");
    assert!(codes[5..].contains(&22), "then rate-limited: {codes:?}");
    // another connection has its own budget
    let mut other = s.login("carol", 0).await;
    assert_eq!(
        other.send_msg("bob", 1, "o1", "x").await["result"]["reasonCode"],
        1
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        c.send_msg("bob", 1, "later", "x").await["result"]["reasonCode"],
        1,
        "refilled"
    );
}

#[tokio::test]
async fn connections_per_user() {
    let s = TestServer::start_with(|c| c.limits.connections_per_user = 2).await;
    let _a = s.login("alice", 0).await;
    let _b = s.login("alice", 1).await;
    s.token("alice", "t2", 2, 0).await;
    let mut third = Client::open(&s.ws).await;
    let r = third.connect("alice", "t2", 2).await;
    assert_eq!(r["result"]["reasonCode"], 11, "{r}");
    assert!(third
        .closed(LONG)
        .await
        .reason
        .contains("connections_per_user"));
    let _other_user = s.login("bob", 0).await;
}

#[tokio::test]
async fn max_connections() {
    let s = TestServer::start_with(|c| c.limits.max_connections = 2).await;
    let _a = s.login("alice", 0).await;
    let _b = s.login("bob", 0).await;
    let refused = tokio_tungstenite::connect_async(s.ws.as_str()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        other => panic!("expected a 503, got {other:?}"),
    }
    drop(_a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _c = s.login("carol", 0).await;
}

#[tokio::test]
async fn group_size_limit() {
    let s = TestServer::start_with(|c| c.limits.group_max_members = 3).await;
    let (st, _) = s
        .post(
            "/channel",
            json!({"channel_id": "g", "channel_type": 2, "subscribers": ["a", "b", "c"]}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, body) = s
        .post(
            "/channel/subscriber_add",
            json!({"channel_id": "g", "channel_type": 2, "subscribers": ["d"]}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        (body["code"].as_str(), body["field"].as_str()),
        (Some("group_too_large"), Some("subscribers"))
    );
    let (st, _) = s
        .post(
            "/channel/subscriber_add",
            json!({"channel_id": "g", "channel_type": 2, "subscribers": ["a"]}),
        )
        .await;
    assert_eq!(st, 200, "re-adding a member does not grow the group");
    let (st, _) = s.post("/channel/subscriber_add", json!({"channel_id": "g", "channel_type": 2, "reset": 1, "subscribers": ["x", "y", "z"]})).await;
    assert_eq!(st, 200, "a reset counts only the new list");
    let (st, _) = s
        .post(
            "/channel",
            json!({"channel_id": "h", "channel_type": 2, "subscribers": ["a", "b", "c", "d"]}),
        )
        .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn sync_limit_caps_the_page() {
    let s = TestServer::start_with(|c| c.limits.sync_max_limit = 3).await;
    for i in 0..5 {
        s.rest_send("alice", "bob", 1, &format!("{i}")).await;
    }
    let p = s.sync("bob", "alice", 1, (1, 0), 10_000, 1).await;
    assert_eq!(p["messages"].as_array().unwrap().len(), 3);
    assert_eq!(p["more"], 1);
    let p = s.sync("bob", "alice", 1, (1, 0), 2, 1).await;
    assert_eq!(p["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_history_page_ends_at_sync_max_bytes_and_says_where_to_go_on() {
    let s = TestServer::start_with(|c| c.limits.sync_max_bytes = 50_000).await;
    // Twelve messages of about 10 KB: four fit in a page of 50 KB (five would pass it).
    let text = "w".repeat(10_000);
    for i in 0..12 {
        s.rest_send("alice", "bob", 1, &format!("{i}{text}")).await;
    }
    let mut seen: Vec<u64> = Vec::new();
    let mut from: u64 = 1;
    loop {
        let page = s.sync("bob", "alice", 1, (from, 0), 100, 1).await;
        let got = seqs(&page);
        assert!(!got.is_empty() && got.len() <= 4, "{got:?}");
        seen.extend(&got);
        if page["more"] == 0 {
            break;
        }
        from = got.last().unwrap() + 1;
    }
    assert_eq!(seen, (1..=12).collect::<Vec<u64>>());
}

#[tokio::test]
async fn lookups_cmd_syncs_and_conversation_lists_hold_to_sync_max_bytes_too() {
    let s = TestServer::start_with(|c| c.limits.sync_max_bytes = 50_000).await;
    let text = "w".repeat(10_000);
    for i in 0..6 {
        s.rest_send("alice", "bob", 1, &format!("{i}{text}")).await;
        s.rest_send("carol", "bob", 1, &format!("{i}{text}")).await;
    }
    // /messages: the first four found fit, and `more` says some were left out
    let (st, page) = s
        .post(
            "/messages",
            json!({"login_uid": "bob", "channel_id": "alice", "channel_type": 1,
                   "message_seqs": [1, 2, 3, 4, 5, 6]}),
        )
        .await;
    assert_eq!(st, 200, "{page}");
    assert_eq!(seqs(&page), [1, 2, 3, 4]);
    assert_eq!(page["more"], 1);
    // /message/sync: CMD messages queued for bob, at most four a call
    let cmd = b64(&json!({"cmd": text}).to_string());
    for _ in 0..6 {
        let (st, _) = s
            .post(
                "/message/send",
                json!({"header": {"sync_once": 1}, "from_uid": "", "channel_id": "", "channel_type": 1,
                       "subscribers": ["bob"], "payload": cmd}),
            )
            .await;
        assert_eq!(st, 200);
    }
    let (_, queued) = s
        .post(
            "/message/sync",
            json!({"uid": "bob", "message_seq": 0, "limit": 100}),
        )
        .await;
    assert_eq!(queued.as_array().map(Vec::len), Some(4), "{queued}");
    // /conversation/sync: one budget over the whole list, each conversation still with its newest
    let (_, list) = s
        .post("/conversation/sync", json!({"uid": "bob", "msg_count": 6}))
        .await;
    let list = list.as_array().unwrap();
    let recents: Vec<usize> = list
        .iter()
        .filter(|c| c["channel_type"] == 1)
        .map(|c| c["recents"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(recents.len(), 2, "{list:?}");
    assert!(recents.iter().all(|n| *n >= 1), "{recents:?}");
    assert!(recents.iter().sum::<usize>() <= 5, "{recents:?}");
}

#[tokio::test]
async fn a_large_groups_offline_recipients_are_spread_over_msg_offline_bodies() {
    let s = TestServer::start_with(|c| c.limits.offline_uids_bytes = 100).await;
    let rcv = Receiver::start().await;
    s.endpoint(json!({"url": rcv.url, "flavour": "wukongim", "events": ["msg.offline"]}))
        .await;
    // 30 members, none online: 29 offline recipients of 6 bytes each in JSON, 16 to a body of 100.
    let members: Vec<String> = (0..30).map(|i| format!("m{i:02}")).collect();
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    s.group("big", &refs).await;
    let (st, _) = s.rest_send("m00", "big", 2, "to everyone").await;
    assert_eq!(st, 200);
    rcv.wait("two msg.offline bodies", LONG, |r| {
        r.iter().filter(|r| r.event() == "msg.offline").count() >= 2
    })
    .await;
    tokio::time::sleep(SHORT).await;
    let bodies = rcv.by_event("msg.offline");
    assert_eq!(bodies.len(), 2);
    let mut to: Vec<String> = Vec::new();
    for body in &bodies {
        let v = body.json();
        assert_eq!(
            v["message_id"],
            bodies[0].json()["message_id"],
            "one message"
        );
        let uids = v["to_uids"].as_array().unwrap();
        assert!(serde_json::to_string(uids).unwrap().len() <= 101, "{v}");
        to.extend(uids.iter().map(|u| u.as_str().unwrap().to_string()));
    }
    to.sort();
    assert_eq!(to, members[1..].to_vec(), "every offline member once");
}

#[tokio::test]
async fn http_body_limit() {
    let s = TestServer::start_with(|c| c.limits.max_http_body_bytes = 1024).await;
    let (st, body) = s
        .post(
            "/user/token",
            json!({"uid": "a", "token": "x".repeat(2000)}),
        )
        .await;
    assert_eq!(st, 413, "{body}");
    assert_eq!(body["code"], "body_too_large");
    let (st, _) = s
        .post("/user/token", json!({"uid": "a", "token": "x".repeat(900)}))
        .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn unacknowledged_recvs_are_capped() {
    let s = TestServer::start_with(|c| c.limits.max_unacked = 3).await;
    let mut bob = s.login("bob", 0).await;
    for i in 0..3 {
        s.rest_send("alice", "bob", 1, &format!("{i}")).await;
    }
    for _ in 0..3 {
        assert!(bob.recv(LONG, false).await.is_some());
    }
    s.rest_send("alice", "bob", 1, "one too many").await;
    let closed = bob.closed(LONG).await;
    assert!(
        closed.reason.contains("without recvack"),
        "{}",
        closed.reason
    );
}

#[tokio::test]
async fn a_connection_holds_at_most_outbound_queue_bytes_of_unacknowledged_recvs() {
    let s = TestServer::start_with(|c| {
        c.limits.outbound_queue_bytes = 1024 * 1024;
        c.limits.max_payload_bytes = 200_000;
    })
    .await;
    // About 233 KiB each (the payload as message and frame): four fit in 1 MiB, a fifth does not.
    let big = b64(&"z".repeat(100_000));
    let send = |no: String| {
        json!({"from_uid": "alice", "client_msg_no": no, "channel_id": "bob", "channel_type": 1,
               "payload": big.clone()})
    };
    // A client that acknowledges what it receives is never near the limit.
    let mut acking = s.login("bob", 0).await;
    for i in 0..12 {
        let (st, _) = s.post("/message/send", send(format!("a{i}"))).await;
        assert_eq!(st, 200);
        assert!(acking.recv(LONG, true).await.is_some(), "recv {i}");
    }
    acking.ws.close(None).await.unwrap();
    // One that reads but never acknowledges is disconnected at the fifth.
    let mut hoarder = s.login("bob", 1).await;
    for i in 0..4 {
        s.post("/message/send", send(format!("h{i}"))).await;
        assert!(hoarder.recv(LONG, false).await.is_some(), "recv {i}");
    }
    s.post("/message/send", send("h-last".into())).await;
    let closed = hoarder.closed(LONG).await;
    let reason = closed
        .disconnect
        .map(|d| d["params"]["reason"].to_string())
        .unwrap_or(closed.reason);
    assert!(reason.contains("outbound_queue_bytes"), "{reason}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_not_buffered() {
    let s = TestServer::start_with(|c| {
        c.limits.outbound_queue = 4;
        c.limits.max_unacked = 100_000;
        c.limits.max_payload_bytes = 300_000;
        c.gateway.write_timeout_ms = 500;
    })
    .await;
    let mut reader = s.login("bob", 0).await;
    // bob stops reading; alice floods him with large messages
    let big = b64(&"z".repeat(250_000));
    for i in 0..120 {
        let (st, _) = s
            .post(
                "/message/send",
                json!({"from_uid": "alice", "client_msg_no": format!("big{i}"), "channel_id": "bob",
                                          "channel_type": 1, "payload": big}),
            )
            .await;
        assert_eq!(st, 200, "the sender is never slowed or refused");
    }
    let ev = s
        .wait_event(
            "slow consumer offline",
            |e| matches!(&e.event, chathook_events::Event::UserOffline(c) if c.uid == "bob"),
        )
        .await;
    assert!(matches!(ev.event, chathook_events::Event::UserOffline(_)));
    let _ = reader.ws.close(None).await;
}
