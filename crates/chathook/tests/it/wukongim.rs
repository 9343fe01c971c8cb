//! WuKongIM compatibility as a business backend (TangSengDaoDao-style) and a client see it: system
//! sends, backend sends that skip sender checks, CMD messages through `/message/sync`, person-channel
//! blacklists and whitelists, bans, and the webhook bodies that differ by device level and persistence.

use std::time::Duration;

use serde_json::{json, Value};

use crate::util::*;

const SHORT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn an_empty_from_uid_is_the_system_on_a_person_channel_too() {
    let s = TestServer::start().await;
    let mut bob = s.login("bob", 0).await;
    // TSDD sends friend requests this way
    let (st, body) = s.rest_send("", "bob", 1, "alice wants to be friends").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["status"], 200);
    assert!(body["data"]["message_id"].is_i64(), "{body}");
    let got = bob
        .recv(LONG, true)
        .await
        .expect("bob receives the system message");
    assert_eq!(got["params"]["fromUid"], "");
}

#[tokio::test]
async fn backend_sends_skip_sender_checks_but_not_bans_or_disbands() {
    let s = TestServer::start().await;
    s.group("g", &["bob"]).await;
    let mut bob = s.login("bob", 0).await;
    // alice is not a member and is blacklisted: a client send is refused, a backend send is not
    s.post_ok(
        "/channel/blacklist_add",
        json!({"channel_id": "g", "channel_type": 2, "uids": ["alice"]}),
    )
    .await;
    let mut alice = s.login("alice", 0).await;
    assert_eq!(
        alice.send_msg("g", 2, "a-1", "x").await["result"]["reasonCode"],
        4
    );
    let (st, body) = s.rest_send("alice", "g", 2, "from the backend").await;
    assert_eq!(st, 200, "{body}");
    assert!(bob.recv(LONG, true).await.is_some());
    // a group nobody created: stored, not an error
    let (st, body) = s.rest_send("alice", "nowhere", 2, "into the void").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["message_seq"], 1);
    // a banned group refuses the backend too, with reason code 19's name
    s.post_ok(
        "/channel/info",
        json!({"channel_id": "g", "channel_type": 2, "ban": 1}),
    )
    .await;
    let (st, body) = s.rest_send("alice", "g", 2, "banned").await;
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("channel_banned")),
        "{body}"
    );
    // /channel/info changed the flags only: the subscribers are still there
    s.post_ok(
        "/channel/info",
        json!({"channel_id": "g", "channel_type": 2}),
    )
    .await;
    assert!(s.rest_send("", "g", 2, "back").await.0 == 200);
    assert!(
        bob.recv(LONG, true).await.is_some(),
        "bob is still a subscriber"
    );
    // a deleted group is disbanded for everyone
    s.post_ok(
        "/channel/delete",
        json!({"channel_id": "g", "channel_type": 2}),
    )
    .await;
    let (st, body) = s.rest_send("", "g", 2, "gone").await;
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("channel_disbanded")),
        "{body}"
    );
}

#[tokio::test]
async fn person_blacklists_block_client_sends_with_reason_4() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice", 0).await;
    let mut bob = s.login("bob", 0).await;
    // bob blocks alice: the list is bob's person channel
    s.post_ok(
        "/channel/blacklist_add",
        json!({"channel_id": "bob", "channel_type": 1, "uids": ["alice"]}),
    )
    .await;
    let r = alice.send_msg("bob", 1, "p-1", "hi").await;
    assert_eq!(r["result"]["reasonCode"], 4, "{r}");
    assert!(bob.recv(SHORT, true).await.is_none());
    // bob can still write to alice, and carol to bob
    assert_eq!(
        bob.send_msg("alice", 1, "p-2", "hi").await["result"]["reasonCode"],
        1
    );
    assert!(alice.recv(LONG, true).await.is_some());
    let mut carol = s.login("carol", 0).await;
    assert_eq!(
        carol.send_msg("bob", 1, "p-3", "hi").await["result"]["reasonCode"],
        1
    );
    // unblocked
    s.post_ok(
        "/channel/blacklist_remove",
        json!({"channel_id": "bob", "channel_type": 1, "uids": ["alice"]}),
    )
    .await;
    assert_eq!(
        alice.send_msg("bob", 1, "p-4", "hi").await["result"]["reasonCode"],
        1
    );
}

#[tokio::test]
async fn group_whitelists_allow_only_the_listed_members_with_reason_13() {
    let s = TestServer::start().await;
    s.group("g", &["alice", "bob"]).await;
    let mut alice = s.login("alice", 0).await;
    let mut bob = s.login("bob", 0).await;
    assert_eq!(
        alice.send_msg("g", 2, "w-0", "x").await["result"]["reasonCode"],
        1
    );
    s.post_ok(
        "/channel/whitelist_set",
        json!({"channel_id": "g", "channel_type": 2, "uids": ["bob"]}),
    )
    .await;
    let (st, list) = s
        .call(
            "GET",
            "/channel/whitelist?channel_id=g&channel_type=2",
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!((st, list), (200, json!(["bob"])));
    assert_eq!(
        alice.send_msg("g", 2, "w-1", "x").await["result"]["reasonCode"],
        13
    );
    assert_eq!(
        bob.send_msg("g", 2, "w-2", "x").await["result"]["reasonCode"],
        1
    );
    s.post_ok(
        "/channel/whitelist_add",
        json!({"channel_id": "g", "channel_type": 2, "uids": ["alice"]}),
    )
    .await;
    assert_eq!(
        alice.send_msg("g", 2, "w-3", "x").await["result"]["reasonCode"],
        1
    );
    s.post_ok(
        "/channel/whitelist_remove",
        json!({"channel_id": "g", "channel_type": 2, "uids": ["alice", "bob"]}),
    )
    .await;
    // an empty whitelist lets every member send again
    assert_eq!(
        alice.send_msg("g", 2, "w-4", "x").await["result"]["reasonCode"],
        1
    );
    let (st, body) = s
        .call("GET", "/channel/whitelist?channel_id=g", None, Some(ADMIN))
        .await;
    assert_eq!(
        (st, body["field"].as_str()),
        (400, Some("channel_type")),
        "{body}"
    );
}

#[tokio::test]
async fn person_whitelists_are_enforced_only_when_the_setting_is_on() {
    for enforced in [false, true] {
        let s = TestServer::start_with(|c| c.messages.person_whitelist = enforced).await;
        let mut alice = s.login("alice", 0).await;
        let mut carol = s.login("carol", 0).await;
        let _bob = s.login("bob", 0).await;
        // TSDD adds friends to each other's whitelists
        s.post_ok(
            "/channel/whitelist_add",
            json!({"channel_id": "bob", "channel_type": 1, "uids": ["alice"]}),
        )
        .await;
        let (_, list) = s
            .call(
                "GET",
                "/channel/whitelist?channel_id=bob&channel_type=1",
                None,
                Some(ADMIN),
            )
            .await;
        assert_eq!(list, json!(["alice"]));
        assert_eq!(
            alice.send_msg("bob", 1, "f-1", "x").await["result"]["reasonCode"],
            1
        );
        let stranger = carol.send_msg("bob", 1, "f-2", "x").await;
        let expected = if enforced { 13 } else { 1 };
        assert_eq!(
            stranger["result"]["reasonCode"], expected,
            "enforced: {enforced}"
        );
    }
}

#[tokio::test]
async fn a_banned_user_is_disconnected_with_reason_19_and_refused_until_unbanned() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice", 0).await;
    let mut alice_web = s.login("alice", 1).await;
    let _bob = s.login("bob", 0).await;
    s.post_ok(
        "/channel/info",
        json!({"channel_id": "alice", "channel_type": 1, "ban": 1}),
    )
    .await;
    // every live session ends with a disconnect carrying reason 19
    for session in [&mut alice, &mut alice_web] {
        let closed = session.closed(LONG).await;
        let disconnect = closed.disconnect.expect("a disconnect notification first");
        assert_eq!(disconnect["params"]["reasonCode"], 19, "{disconnect}");
    }
    // the existing token no longer logs in, with reason 19
    let mut again = Client::open(&s.ws).await;
    assert_eq!(
        again.connect("alice", "tok-alice-0", 0).await["result"]["reasonCode"],
        19
    );
    // a new token is refused with status 19 and not stored
    let (st, body) = s
        .post(
            "/user/token",
            json!({"uid": "alice", "token": "new", "device_flag": 0}),
        )
        .await;
    assert_eq!((st, body), (200, json!({"status": 19})));
    s.post_ok(
        "/channel/info",
        json!({"channel_id": "alice", "channel_type": 1, "ban": 0}),
    )
    .await;
    let mut back = Client::open(&s.ws).await;
    assert_eq!(
        back.connect("alice", "tok-alice-0", 0).await["result"]["reasonCode"],
        1
    );
    assert_eq!(
        back.send_msg("bob", 1, "b-2", "x").await["result"]["reasonCode"],
        1
    );
    let mut c = Client::open(&s.ws).await;
    assert_eq!(
        c.connect("alice", "new", 0).await["result"]["reasonCode"],
        2,
        "the token refused during the ban was not stored"
    );
}

#[tokio::test]
async fn cmd_messages_wait_in_message_sync_until_acknowledged() {
    let s = TestServer::start().await;
    s.group("g", &["alice", "bob", "carol"]).await;
    let mut bob = s.login("bob", 0).await;
    // to listed users, from the system; and a sync_once message on a group
    let (st, body) = s
        .post("/message/send", json!({"header": {"sync_once": 1}, "from_uid": "", "channel_id": "",
                "channel_type": 1, "subscribers": ["bob", "carol"], "payload": b64(r#"{"cmd":"friendRequest"}"#)}))
        .await;
    assert_eq!((st, body), (200, json!({"status": 200})));
    let (st, body) = s
        .post(
            "/message/send",
            json!({"header": {"sync_once": 1}, "from_uid": "alice", "channel_id": "g",
                "channel_type": 2, "payload": b64(r#"{"cmd":"groupUpdate"}"#)}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["data"]["message_seq"], 0,
        "a CMD message takes no seq in history"
    );
    // live to the online recipient, as before
    for _ in 0..2 {
        let live = bob.recv(LONG, true).await.expect("live CMD");
        assert_eq!(live["params"]["header"]["syncOnce"], true);
    }
    // and queued for every recipient but the sender, until acknowledged
    let sync = |uid: &'static str, after: u64| {
        let s = &s;
        async move {
            let (st, body) = s
                .post(
                    "/message/sync",
                    json!({"uid": uid, "message_seq": after, "limit": 10}),
                )
                .await;
            assert_eq!(st, 200, "{body}");
            body.as_array()
                .unwrap_or_else(|| panic!("a bare array: {body}"))
                .clone()
        }
    };
    let carol = sync("carol", 0).await;
    assert_eq!(carol.len(), 2);
    assert_eq!(carol[0]["from_uid"], "");
    assert_eq!(payload_of(&carol[0]), json!({"cmd": "friendRequest"}));
    assert_eq!(carol[1]["channel_id"], "g");
    assert_eq!(carol[1]["channel_type"], 2);
    assert_eq!(carol[1]["header"]["sync_once"], 1);
    assert!(sync("alice", 0).await.is_empty(), "not the sender");
    let first = carol[0]["message_seq"].as_u64().unwrap();
    let last = carol[1]["message_seq"].as_u64().unwrap();
    assert!(last > first);
    assert_eq!(sync("carol", first).await.len(), 1, "paged by message_seq");
    s.post_ok(
        "/message/syncack",
        json!({"uid": "carol", "last_message_seq": first}),
    )
    .await;
    assert_eq!(sync("carol", 0).await.len(), 1);
    s.post_ok(
        "/message/syncack",
        json!({"uid": "carol", "last_message_seq": last}),
    )
    .await;
    assert!(sync("carol", 0).await.is_empty());
    assert_eq!(sync("bob", 0).await.len(), 2, "bob's queue is his own");
    // CMD messages are not channel history
    let page = s.sync("carol", "g", 2, (0, 0), 10, 1).await;
    assert_eq!(seqs(&page), Vec::<u64>::new());
}

fn payload_of(m: &Value) -> Value {
    payload_json(&m["payload"])
}

#[tokio::test]
async fn msg_offline_counts_primary_devices_and_msg_notify_leaves_no_persist_out() {
    let s =
        TestServer::start_with(|c| c.webhook.msg_notify_interval = Duration::from_millis(50)).await;
    let rcv = Receiver::start().await;
    s.endpoint(
        json!({"url": rcv.url, "flavour": "wukongim", "events": ["msg.notify", "msg.offline"]}),
    )
    .await;
    let mut alice = s.login_primary("alice", 0).await;
    let _bob_web = s.login("bob", 1).await; // secondary only: WuKongIM still pushes to bob
    let _carol = s.login_primary("carol", 0).await;
    s.group("g", &["alice", "bob", "carol"]).await;
    alice
        .request(
            "send",
            json!({"clientMsgNo": "np", "channelId": "g", "channelType": 2,
                                "header": {"noPersist": true}, "payload": b64("{}")}),
        )
        .await;
    alice.send_msg("g", 2, "kept", "stored").await;
    rcv.wait("msg.notify and msg.offline", LONG, |r| {
        r.iter().any(|x| x.event() == "msg.notify")
            && r.iter().filter(|x| x.event() == "msg.offline").count() >= 2
    })
    .await;
    let offline: Vec<Value> = rcv
        .by_event("msg.offline")
        .iter()
        .map(|r| r.json())
        .collect();
    for o in &offline {
        assert_eq!(o["to_uids"], json!(["bob"]), "{o}");
        assert_eq!(o["source_id"], 1, "{o}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let notified: Vec<Value> = rcv
        .by_event("msg.notify")
        .iter()
        .flat_map(|r| r.json().as_array().cloned().unwrap_or_default())
        .collect();
    let nos: Vec<&str> = notified
        .iter()
        .filter_map(|m| m["client_msg_no"].as_str())
        .collect();
    assert_eq!(
        nos,
        vec!["kept"],
        "no_persist messages are not in msg.notify"
    );
}

#[tokio::test]
async fn route_answers_the_configured_addresses_bare() {
    let s = TestServer::start_with(|c| {
        c.route.wss_addr = "wss://im.example.com".into();
        c.route.intranet_tcp_addr = "10.0.0.5:5100".into();
    })
    .await;
    let (st, body) = s.call("GET", "/route?uid=alice", None, Some(ADMIN)).await;
    assert_eq!(st, 200);
    assert_eq!(body["ws_addr"], s.ws, "the gateway's address by default");
    assert_eq!(body["wss_addr"], "wss://im.example.com");
    assert_eq!(
        body["tcp_addr"], s.tcp,
        "the TCP gateway's address by default"
    );
    let (st, body) = s
        .call("GET", "/route?uid=alice&intranet=1", None, Some(ADMIN))
        .await;
    assert_eq!(
        (st, &body["tcp_addr"], &body["ws_addr"]),
        (200, &json!("10.0.0.5:5100"), &json!(""))
    );
    let (st, body) = s.post("/route/batch", json!(["alice", "bob"])).await;
    assert_eq!(st, 200);
    assert_eq!(body[0]["uids"], json!(["alice", "bob"]));
    assert_eq!(body[0]["wss_addr"], "wss://im.example.com");
    let (st, body) = s.post("/route/batch", json!({"uids": []})).await;
    assert_eq!(st, 400, "{body}");
}

#[tokio::test]
async fn messages_and_max_message_seq_read_history_by_seq_id_and_client_msg_no() {
    let s = TestServer::start().await;
    s.group("g", &["alice"]).await;
    let mut ids = Vec::new();
    for i in 1..=3 {
        let (st, body) = s
            .post(
                "/message/send",
                json!({"from_uid": "alice", "channel_id": "g", "channel_type": 2,
                    "client_msg_no": format!("n{i}"), "payload": b64("{}")}),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        ids.push(body["data"]["message_id"].as_i64().unwrap());
    }
    let (st, body) = s
        .call(
            "GET",
            "/channel/max_message_seq?channel_id=g&channel_type=2",
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!((st, body), (200, json!({"message_seq": 3})));
    let (st, body) = s
        .post(
            "/messages",
            json!({"channel_id": "g", "channel_type": 2, "message_seqs": [1, 9],
                "message_ids": [ids[1]], "client_msg_nos": ["n3", "n1"]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(body.get("status").is_none(), "bare: {body}");
    assert_eq!(
        seqs(&body),
        vec![1, 2, 3],
        "each found once, unknown ones left out"
    );
    assert_eq!(body["more"], 0);
    // a person channel needs the asking user
    s.rest_send("alice", "bob", 1, "hi").await;
    let (st, body) = s
        .call(
            "GET",
            "/channel/max_message_seq?channel_id=bob&channel_type=1&login_uid=alice",
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!((st, body), (200, json!({"message_seq": 1})));
    let (st, body) = s
        .call(
            "GET",
            "/channel/max_message_seq?channel_id=bob&channel_type=1",
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (st, body["field"].as_str()),
        (400, Some("login_uid")),
        "{body}"
    );
    let (st, body) = s
        .post("/messages", json!({"login_uid": "bob", "channel_id": "alice", "channel_type": 1, "message_seqs": [1]}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(body["messages"][0]["channel_id"], "bob");
}

#[tokio::test]
async fn sendbatch_sends_one_person_message_to_each_subscriber() {
    let s = TestServer::start().await;
    let mut bob = s.login("bob", 0).await;
    let mut carol = s.login("carol", 0).await;
    let (st, body) = s
        .post(
            "/message/sendbatch",
            json!({"from_uid": "alice", "subscribers": ["bob", "carol"],
                "header": {"red_dot": 1}, "payload": b64(r#"{"type":1}"#)}),
        )
        .await;
    assert_eq!((st, body), (200, json!({"fail_uids": [], "reason": []})));
    for c in [&mut bob, &mut carol] {
        let got = c.recv(LONG, true).await.expect("each subscriber receives");
        assert_eq!(got["params"]["channelId"], "alice");
        assert_eq!(got["params"]["channelType"], 1);
        assert_eq!(got["params"]["header"]["redDot"], true);
    }
    let (st, body) = s
        .post(
            "/message/sendbatch",
            json!({"from_uid": "alice", "subscribers": [], "payload": "e30="}),
        )
        .await;
    assert_eq!((st, body["field"].as_str()), (400, Some("subscribers")));
    let (st, body) = s
        .post(
            "/message/sendbatch",
            json!({"from_uid": "", "subscribers": ["bob"], "payload": "e30="}),
        )
        .await;
    assert_eq!((st, body["field"].as_str()), (400, Some("from_uid")));
}

#[tokio::test]
async fn system_uids_send_past_the_checks_and_persist() {
    let s = TestServer::start().await;
    s.group("g", &["bob"]).await;
    let mut bot = s.login("bot", 0).await;
    let mut bob = s.login("bob", 0).await;
    assert_eq!(
        bot.send_msg("g", 2, "s-1", "x").await["result"]["reasonCode"],
        3,
        "not a member"
    );
    s.post_ok("/user/systemuids_add", json!({"uids": ["bot", "admin"]}))
        .await;
    let (st, body) = s.call("GET", "/user/systemuids", None, Some(ADMIN)).await;
    assert_eq!((st, body), (200, json!(["admin", "bot"])));
    assert_eq!(
        bot.send_msg("g", 2, "s-2", "x").await["result"]["reasonCode"],
        1
    );
    assert!(bob.recv(LONG, true).await.is_some());
    s.post_ok("/user/systemuids_remove", json!({"uids": ["admin"]}))
        .await;
    drop((bot, bob));
    let s = s.restart(|_| {}).await;
    let (_, body) = s.call("GET", "/user/systemuids", None, Some(ADMIN)).await;
    assert_eq!(body, json!(["bot"]), "kept across a restart");
    let mut bot = s.login("bot", 0).await;
    assert_eq!(
        bot.send_msg("g", 2, "s-3", "x").await["result"]["reasonCode"],
        1
    );
}

/// The connection id of `uid`'s connection with `device_flag`, from its online event.
async fn online_conn_id(s: &TestServer, uid: &str, device_flag: u8) -> u64 {
    let online = s
        .wait_event("the connection's online event", |e| {
            matches!(&e.event, chathook_events::Event::UserOnline(c) if c.uid == uid && c.device_flag == device_flag)
        })
        .await;
    match online.event {
        chathook_events::Event::UserOnline(c) => c.conn_id,
        _ => unreachable!(),
    }
}

/// After `route` closed one of alice's connections: `first`, her other one, still answers; an unknown
/// connection id is not an error, and 0 is refused naming the field.
async fn only_that_one_closed(s: &TestServer, first: &mut Client, route: &str) {
    assert!(
        is_pong(&first.request("ping", json!({})).await),
        "the other connection stays"
    );
    s.post_ok(route, json!({"uid": "alice", "conn_id": 999_999}))
        .await;
    let (st, body) = s.post(route, json!({"uid": "alice", "conn_id": 0})).await;
    assert_eq!((st, body["field"].as_str()), (400, Some("conn_id")));
}

#[tokio::test]
async fn conn_kick_closes_one_connection_with_reason_12() {
    let s = TestServer::start().await;
    let mut first = s.login("alice", 0).await;
    let mut second = s.login("alice", 1).await;
    let conn_id = online_conn_id(&s, "alice", 1).await;
    s.post_ok(
        "/conn/kick",
        json!({"uid": "alice", "conn_id": conn_id, "node_id": 1}),
    )
    .await;
    let closed = second.closed(LONG).await;
    assert_eq!(
        closed.disconnect.expect("disconnect")["params"]["reasonCode"],
        12
    );
    only_that_one_closed(&s, &mut first, "/conn/kick").await;
}

#[tokio::test]
async fn a_cmd_to_listed_subscribers_ignores_its_channel_type_as_wukongim_does() {
    // A Go backend's SendCMD with `subscribers` leaves channel_type at Go's zero value.
    let s = TestServer::start().await;
    for channel_type in [0, 9] {
        let (st, body) = s
            .post(
                "/message/send",
                json!({"header": {"sync_once": 1}, "from_uid": "alice", "channel_id": "",
                    "channel_type": channel_type, "subscribers": ["bob"],
                    "payload": b64(&format!(r#"{{"cmd":"c{channel_type}"}}"#))}),
            )
            .await;
        assert_eq!(st, 200, "channel_type {channel_type}: {body}");
    }
    let (st, body) = s
        .post(
            "/message/sync",
            json!({"uid": "bob", "message_seq": 0, "limit": 10}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let cmds: Vec<Value> = body
        .as_array()
        .expect("a bare array")
        .iter()
        .map(|m| payload_json(&m["payload"]))
        .collect();
    assert_eq!(cmds, [json!({"cmd": "c0"}), json!({"cmd": "c9"})]);
    // a real channel still needs a type it knows
    let (st, body) = s
        .post(
            "/message/send",
            json!({"from_uid": "alice", "channel_id": "bob", "channel_type": 0, "payload": "e30="}),
        )
        .await;
    assert_eq!(
        (st, body["field"].as_str()),
        (400, Some("channel_type")),
        "{body}"
    );
}

#[tokio::test]
async fn one_message_by_id_or_client_msg_no_answers_it_bare_or_status_404() {
    let s = TestServer::start().await;
    s.group("g", &["alice", "bob"]).await;
    let (st, sent) = s
        .post(
            "/message/send",
            json!({"from_uid": "alice", "channel_id": "g", "channel_type": 2,
                "client_msg_no": "m-1", "payload": b64(r#"{"type":1,"content":"one"}"#)}),
        )
        .await;
    assert_eq!(st, 200, "{sent}");
    let id = sent["data"]["message_id"].as_i64().unwrap();
    for by in [json!({"message_id": id}), json!({"client_msg_no": "m-1"})] {
        let mut body = json!({"channel_id": "g", "channel_type": 2});
        body.as_object_mut()
            .unwrap()
            .extend(by.as_object().unwrap().clone());
        let (st, m) = s.post("/message", body).await;
        assert_eq!(st, 200, "{m}");
        assert_eq!(m["message_id"], id, "bare: {m}");
        assert_eq!(m["client_msg_no"], "m-1");
        assert_eq!(payload_json(&m["payload"])["content"], "one");
    }
    let (st, m) = s
        .post(
            "/message",
            json!({"channel_id": "g", "channel_type": 2, "message_id": 1}),
        )
        .await;
    assert_eq!(
        (st, m),
        (200, json!({"status": 404})),
        "WuKongIM answers a miss so"
    );
    // a person channel is found through the user asking
    s.rest_send("alice", "bob", 1, "hi bob").await;
    let (st, m) = s
        .post(
            "/message",
            json!({"channel_id": "bob", "channel_type": 1, "client_msg_no": "x"}),
        )
        .await;
    assert_eq!((st, m["field"].as_str()), (400, Some("login_uid")), "{m}");
    let (st, m) = s
        .post(
            "/message",
            json!({"channel_id": "g", "channel_type": 0, "message_id": id}),
        )
        .await;
    assert_eq!(
        (st, m["field"].as_str()),
        (400, Some("channel_type")),
        "{m}"
    );
}

#[tokio::test]
async fn conn_remove_closes_one_connection_without_a_disconnect_notice() {
    let s = TestServer::start().await;
    let mut first = s.login("alice", 0).await;
    let mut binary = s.login_binary("alice", 1, 2).await;
    let conn_id = online_conn_id(&s, "alice", 1).await;
    s.post_ok(
        "/conn/remove",
        json!({"uid": "alice", "conn_id": conn_id, "node_id": 1, "op_node_id": 0}),
    )
    .await;
    let closed = binary.closed(LONG).await;
    assert!(closed.disconnect.is_none(), "no DISCONNECT: {closed:?}");
    assert_eq!(closed.code, Some(1008), "closed: {closed:?}");
    s.wait_event(
        "alice's binary connection offline",
        |e| matches!(&e.event, chathook_events::Event::UserOffline(o) if o.conn_id == conn_id),
    )
    .await;
    only_that_one_closed(&s, &mut first, "/conn/remove").await;
}

#[tokio::test]
async fn a_cmd_acknowledged_live_by_a_primary_device_leaves_the_message_sync_queue() {
    let s = TestServer::start().await;
    let mut bob = s.login_primary("bob", 0).await;
    let mut carl = s.login("carl", 0).await;
    let (st, body) = s
        .post(
            "/message/send",
            json!({"header": {"sync_once": 1}, "from_uid": "", "channel_id": "",
                "channel_type": 1, "subscribers": ["bob", "carl"], "payload": b64(r#"{"cmd":"x"}"#)}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    for c in [&mut bob, &mut carl] {
        let live = c.recv(LONG, true).await.expect("the CMD live");
        assert_eq!(live["params"]["header"]["syncOnce"], true);
    }
    let queued = |uid: &'static str| {
        let s = &s;
        async move {
            let (_, body) = s
                .post(
                    "/message/sync",
                    json!({"uid": uid, "message_seq": 0, "limit": 10}),
                )
                .await;
            body.as_array().map_or(0, |a| a.len())
        }
    };
    eventually(
        "bob's queue emptied by his primary device's recvack",
        LONG,
        || async {
            match queued("bob").await {
                0 => Ok(()),
                n => Err(format!("{n} queued")),
            }
        },
    )
    .await;
    assert_eq!(
        queued("carl").await,
        1,
        "a secondary device's recvack leaves it queued"
    );
}

#[tokio::test]
async fn delete_range_removes_a_span_of_history_and_seqs_go_on() {
    let s = TestServer::start().await;
    s.group("g", &["alice", "bob"]).await;
    for n in 1..=4 {
        let (st, body) = s.rest_send("alice", "g", 2, &format!("m{n}")).await;
        assert_eq!(st, 200, "{body}");
    }
    let delete = |body: Value| {
        let s = &s;
        async move { s.post("/messages/deleteRange", body).await }
    };
    let (st, body) =
        delete(json!({"channel_id": "g", "channel_type": 2, "start_msg_seq": 2, "end_msg_seq": 4}))
            .await;
    assert_eq!((st, body), (200, json!({"status": 200})));
    let page = s.sync("alice", "g", 2, (0, 0), 10, 1).await;
    assert_eq!(seqs(&page), [1]);
    let (_, max) = s
        .call(
            "GET",
            "/channel/max_message_seq?channel_id=g&channel_type=2",
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(max["message_seq"], 4, "the newest seq stays: {max}");
    let (_, sent) = s.rest_send("alice", "g", 2, "m5").await;
    assert_eq!(sent["data"]["message_seq"], 5);
    // WuKongIM's checks, each naming its field
    for (body, field) in [
        (
            json!({"channel_id": "bob", "channel_type": 1, "start_msg_seq": 1, "end_msg_seq": 1}),
            "login_uid",
        ),
        (
            json!({"channel_id": "g", "channel_type": 0, "start_msg_seq": 1, "end_msg_seq": 1}),
            "channel_type",
        ),
        (
            json!({"channel_id": "", "channel_type": 2, "start_msg_seq": 1, "end_msg_seq": 1}),
            "channel_id",
        ),
        (
            json!({"channel_id": "g", "channel_type": 2, "start_msg_seq": 0, "end_msg_seq": 1}),
            "start_msg_seq",
        ),
        (
            json!({"channel_id": "g", "channel_type": 2, "start_msg_seq": 3, "end_msg_seq": 2}),
            "end_msg_seq",
        ),
    ] {
        let (st, answer) = delete(body).await;
        assert_eq!(
            (st, answer["field"].as_str()),
            (400, Some(field)),
            "{answer}"
        );
    }
    // a person channel, asked for by one of its users
    s.rest_send("alice", "bob", 1, "p1").await;
    let (st, _) = delete(
        json!({"login_uid": "bob", "channel_id": "alice", "channel_type": 1,
        "start_msg_seq": 1, "end_msg_seq": 1}),
    )
    .await;
    assert_eq!(st, 200);
    let page = s.sync("alice", "bob", 1, (0, 0), 10, 1).await;
    assert_eq!(seqs(&page), Vec::<u64>::new());
}
