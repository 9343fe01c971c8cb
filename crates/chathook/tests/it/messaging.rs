//! Messages: 1:1 and group round trips, multi-device delivery, group rules, idempotency, sequence
//! numbers under concurrency, header flags and payload forms.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::util::*;

#[tokio::test]
async fn person_messages_reach_every_device_but_the_sending_one() {
    let s = TestServer::start().await;
    let mut alice_app = s.login("alice", 0).await;
    let mut alice_web = s.login("alice", 1).await;
    let mut bob = s.login("bob", 0).await;

    let ack = alice_app.send_msg("bob", 1, "m-1", "hello").await;
    let res = &ack["result"];
    assert_eq!(res["reasonCode"], 1);
    assert_eq!(res["messageSeq"], 1);
    assert!(res["messageId"].as_str().unwrap().parse::<i64>().unwrap() > 0);

    let got = bob.recv(LONG, true).await.expect("bob receives");
    let p = &got["params"];
    assert_eq!(p["channelId"], "alice");
    assert_eq!(p["channelType"], 1);
    assert_eq!(p["fromUid"], "alice");
    assert_eq!(
        payload_json(&p["payload"]),
        json!({"type": 1, "content": "hello"})
    );
    assert_eq!(p["messageId"], res["messageId"]);
    assert_eq!(p["clientMsgNo"], "m-1");
    let ts = p["timestamp"].as_i64().unwrap();
    assert!((1_000_000_000..10_000_000_000).contains(&ts));

    let mine = alice_web
        .recv(LONG, true)
        .await
        .expect("the sender's other device receives");
    assert_eq!(
        mine["params"]["channelId"], "bob",
        "the sender's devices see the peer"
    );
    assert!(
        alice_app.recv(SHORT, true).await.is_none(),
        "not echoed to the sending connection"
    );

    // reply: same channel, next seq, from both sides' views
    let reply = bob.send_msg("alice", 1, "m-2", "hi").await;
    assert_eq!(reply["result"]["messageSeq"], 2);
    let a = s.sync("alice", "bob", 1, (0, 0), 10, 1).await;
    let b = s.sync("bob", "alice", 1, (0, 0), 10, 1).await;
    assert_eq!(a["messages"].as_array().unwrap().len(), 2);
    // WuKongIM: a person message's channel_id is the member who is not the sender, whoever asks
    for page in [&a, &b] {
        assert_eq!(page["messages"][0]["channel_id"], "bob");
        assert_eq!(page["messages"][1]["channel_id"], "alice");
    }
    assert_eq!(
        a["messages"][1]["message_id"],
        b["messages"][1]["message_id"]
    );
}

#[tokio::test]
async fn group_messages_follow_membership_and_group_state() {
    let s = TestServer::start().await;
    s.group("g1", &["alice", "bob", "carol"]).await;
    let mut alice = s.login("alice", 0).await;
    let mut bob = s.login("bob", 0).await;
    let mut dave = s.login("dave", 0).await;

    let r = alice.send_msg("g1", 2, "g-1", "hi all").await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    let got = bob.recv(LONG, true).await.unwrap();
    assert_eq!(got["params"]["channelId"], "g1");
    assert_eq!(got["params"]["channelType"], 2);
    assert!(
        dave.recv(SHORT, true).await.is_none(),
        "non-members receive nothing"
    );

    assert_eq!(
        dave.send_msg("g1", 2, "d-1", "let me in").await["result"]["reasonCode"],
        3
    );
    assert_eq!(
        alice.send_msg("nope", 2, "n-1", "x").await["result"]["reasonCode"],
        5
    );

    let (st, _) = s
        .post(
            "/channel/blacklist_add",
            json!({"channel_id": "g1", "channel_type": 2, "uids": ["bob"]}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        bob.send_msg("g1", 2, "b-1", "x").await["result"]["reasonCode"],
        4
    );
    let (st, _) = s
        .post(
            "/channel/blacklist_remove",
            json!({"channel_id": "g1", "channel_type": 2, "uids": ["bob"]}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        bob.send_msg("g1", 2, "b-2", "back").await["result"]["reasonCode"],
        1
    );

    let (st, _) = s
        .post(
            "/channel",
            json!({"channel_id": "g1", "channel_type": 2, "ban": 1}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        alice.send_msg("g1", 2, "g-2", "x").await["result"]["reasonCode"],
        19
    );
    let (st, _) = s
        .post(
            "/channel",
            json!({"channel_id": "g1", "channel_type": 2, "disband": 1}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        alice.send_msg("g1", 2, "g-3", "x").await["result"]["reasonCode"],
        24
    );

    // subscribers added later receive; removed ones do not
    s.group("g2", &["alice"]).await;
    let (st, _) = s
        .post(
            "/channel/subscriber_add",
            json!({"channel_id": "g2", "channel_type": 2, "subscribers": ["dave"]}),
        )
        .await;
    assert_eq!(st, 200);
    alice.send_msg("g2", 2, "g2-1", "welcome").await;
    assert!(dave.recv(LONG, true).await.is_some());
    let (st, _) = s
        .post(
            "/channel/subscriber_remove",
            json!({"channel_id": "g2", "channel_type": 2, "subscribers": ["dave"]}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        dave.send_msg("g2", 2, "d-2", "x").await["result"]["reasonCode"],
        3
    );
    let (st, _) = s
        .post(
            "/channel/delete",
            json!({"channel_id": "g2", "channel_type": 2}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        alice.send_msg("g2", 2, "g2-2", "x").await["result"]["reasonCode"],
        24,
        "a deleted group answers disbanded, as WuKongIM does"
    );
    assert_eq!(
        alice.send_msg("never", 2, "g2-3", "x").await["result"]["reasonCode"],
        5,
        "a group that never existed"
    );
}

#[tokio::test]
async fn the_same_client_msg_no_is_idempotent() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice", 0).await;
    let mut bob = s.login("bob", 0).await;
    let first = alice.send_msg("bob", 1, "dup-1", "once").await;
    let second = alice.send_msg("bob", 1, "dup-1", "once").await;
    assert_eq!(first["result"]["messageId"], second["result"]["messageId"]);
    assert_eq!(
        first["result"]["messageSeq"],
        second["result"]["messageSeq"]
    );
    assert!(bob.recv(LONG, true).await.is_some());
    assert!(bob.recv(SHORT, true).await.is_none(), "delivered once");
    assert_eq!(
        s.sync("bob", "alice", 1, (0, 0), 10, 1).await["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // REST too; another sender may use the same number
    let body = json!({"from_uid": "carol", "client_msg_no": "dup-1", "channel_id": "bob", "channel_type": 1,
                      "payload": b64("{\"a\":1}")});
    let (_, a) = s.post("/message/send", body.clone()).await;
    let (_, b) = s.post("/message/send", body).await;
    assert_eq!(a["data"]["message_id"], b["data"]["message_id"]);
    assert_ne!(
        a["data"]["message_id"].to_string(),
        first["result"]["messageId"].as_str().unwrap()
    );
    assert_eq!(
        s.sync("bob", "carol", 1, (0, 0), 10, 1).await["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn the_dedup_window_is_configurable() {
    let s = TestServer::start_with(|c| c.messages.dedup_window_secs = 0).await;
    let mut alice = s.login("alice", 0).await;
    let first = alice.send_msg("bob", 1, "w-1", "a").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = alice.send_msg("bob", 1, "w-1", "a").await;
    assert_ne!(
        first["result"]["messageId"], second["result"]["messageId"],
        "outside the window it is new"
    );
}

#[tokio::test]
async fn seqs_have_no_gaps_or_duplicates_under_concurrent_senders() {
    let s = TestServer::start().await;
    let members = ["u0", "u1", "u2", "u3"];
    s.group("busy", &members).await;
    let per_sender = 40;
    let mut tasks = Vec::new();
    for uid in members {
        let mut c = s.login(uid, 0).await;
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..per_sender {
                let r = c.send_msg("busy", 2, &format!("{uid}-{i}"), "x").await;
                assert_eq!(r["result"]["reasonCode"], 1, "{r}");
                seqs.push(r["result"]["messageSeq"].as_u64().unwrap());
            }
            seqs
        }));
    }
    // and a backend sending at the same time
    let rest = {
        let api = s.api.clone();
        tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..per_sender {
                let body = json!({"from_uid": "u0", "client_msg_no": format!("rest-{i}"), "channel_id": "busy",
                                  "channel_type": 2, "payload": b64("{}")});
                let v = admin_post(&api, "/message/send", body).await;
                seqs.push(v["data"]["message_seq"].as_u64().unwrap());
            }
            seqs
        })
    };
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one sender's seqs increase"
        );
        all.extend(seqs);
    }
    all.extend(rest.await.unwrap());
    let total = (members.len() + 1) * per_sender;
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), total, "no duplicates");
    assert_eq!(unique, (1..=total as u64).collect(), "no gaps");
    let page = s.sync("u1", "busy", 2, (1, 0), 1000, 1).await;
    assert_eq!(seqs(&page), (1..=total as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn header_flags_and_payload_forms() {
    let s = TestServer::start().await;
    let mut alice = s.login("alice", 0).await;
    let mut bob = s.login("bob", 0).await;

    // no_persist: delivered, seq 0, not in history
    let r = alice
        .request("send", json!({"clientMsgNo": "np", "channelId": "bob", "channelType": 1,
                                "header": {"noPersist": true, "redDot": true}, "payload": {"t": "typing"}}))
        .await;
    assert_eq!(r["result"]["messageSeq"], 0);
    let got = bob.recv(LONG, true).await.unwrap();
    assert_eq!(got["params"]["header"]["noPersist"], true);
    assert_eq!(got["params"]["header"]["redDot"], true);

    // a base64 string payload (the SDKs' form) is decoded and stored as bytes; recv carries base64
    let r = alice
        .request(
            "send",
            json!({"clientMsgNo": "b64", "channelId": "bob", "channelType": 1,
                                "payload": b64("{\"type\":1,\"content\":\"x\"}")}),
        )
        .await;
    assert_eq!(r["result"]["messageSeq"], 1);
    assert_eq!(
        bob.recv(LONG, true).await.unwrap()["params"]["payload"],
        b64("{\"type\":1,\"content\":\"x\"}")
    );

    // bytes that are not JSON reach JSON-RPC clients as base64
    let (st, _) = s
        .post(
            "/message/send",
            json!({"from_uid": "alice", "channel_id": "bob", "channel_type": 1,
                                      "payload": "AAEC/w=="}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        bob.recv(LONG, true).await.unwrap()["params"]["payload"],
        "AAEC/w=="
    );

    // sync_once messages are delivered but are not channel history
    let (st, _) = s
        .post(
            "/message/send",
            json!({"header": {"sync_once": 1}, "from_uid": "alice", "channel_id": "bob",
                                      "channel_type": 1, "payload": b64("{}")}),
        )
        .await;
    assert_eq!(st, 200);
    assert!(bob.recv(LONG, true).await.is_some());
    let history = s.sync("bob", "alice", 1, (0, 0), 10, 1).await;
    assert_eq!(
        seqs(&history),
        vec![1, 2],
        "no_persist and sync_once messages are not in history"
    );
    let m = &history["messages"][1];
    assert_eq!(m["payload"], "AAEC/w==");
    assert_eq!(
        m["header"],
        json!({"no_persist": 0, "red_dot": 0, "sync_once": 0})
    );
    assert_eq!(m["message_idstr"], m["message_id"].to_string());
}

#[tokio::test]
async fn expired_messages_leave_sync() {
    let s = TestServer::start().await;
    let (st, _) = s
        .post(
            "/message/send",
            json!({"from_uid": "alice", "channel_id": "bob", "channel_type": 1, "expire": 1,
                                      "payload": b64("{}")}),
        )
        .await;
    assert_eq!(st, 200);
    s.rest_send("alice", "bob", 1, "stays").await;
    assert_eq!(
        s.sync("bob", "alice", 1, (0, 0), 10, 1).await["messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let page = s.sync("bob", "alice", 1, (0, 0), 10, 1).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0]["message_seq"], 2);
}

#[tokio::test]
async fn sync_pages_like_wukongim() {
    let s = TestServer::start().await;
    for i in 0..25 {
        let (st, _) = s.rest_send("alice", "bob", 1, &format!("m{i}")).await;
        assert_eq!(st, 200);
    }
    // both 0: the newest `limit`, oldest first
    let p = s.sync("bob", "alice", 1, (0, 0), 10, 0).await;
    assert_eq!(seqs(&p), (16..=25).collect::<Vec<_>>());
    assert_eq!(p["more"], 1);
    // pull up from 1: start included
    let p = s.sync("bob", "alice", 1, (1, 0), 10, 1).await;
    assert_eq!(seqs(&p), (1..=10).collect::<Vec<_>>());
    assert_eq!(p["more"], 1);
    let p = s.sync("bob", "alice", 1, (21, 0), 10, 1).await;
    assert_eq!(seqs(&p), (21..=25).collect::<Vec<_>>());
    assert_eq!(p["more"], 0);
    // end excluded
    let p = s.sync("bob", "alice", 1, (5, 9), 100, 1).await;
    assert_eq!(seqs(&p), vec![5, 6, 7, 8]);
    // pull down from 15 towards older, end excluded
    let p = s.sync("bob", "alice", 1, (15, 10), 100, 0).await;
    assert_eq!(seqs(&p), vec![11, 12, 13, 14, 15]);
    let p = s.sync("bob", "alice", 1, (15, 0), 3, 0).await;
    assert_eq!(seqs(&p), vec![13, 14, 15]);
    assert_eq!(p["more"], 1);
    assert_eq!(p["start_message_seq"], 15);
    // the same channel from the other side
    assert_eq!(
        seqs(&s.sync("alice", "bob", 1, (0, 0), 100, 1).await).len(),
        25
    );
    // a stranger's view of the channel is empty
    assert!(seqs(&s.sync("carol", "alice", 1, (0, 0), 100, 1).await).is_empty());
}

#[tokio::test]
async fn rest_sends_reach_online_members_and_a_subscriber_subset() {
    let s = TestServer::start().await;
    s.group("g", &["alice", "bob", "carol"]).await;
    let mut bob = s.login("bob", 0).await;
    let mut carol = s.login("carol", 0).await;
    let (st, body) = s.rest_send("", "g", 2, "system says").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["message_seq"], 1);
    assert!(body["data"]["message_id"].is_i64());
    assert!(body["data"]["client_msg_no"]
        .as_str()
        .unwrap()
        .ends_with('0'));
    assert!(bob.recv(LONG, true).await.is_some() && carol.recv(LONG, true).await.is_some());

    // subscribers: a CMD message to those users only (empty channel_id, sync_once), answered bare OK
    let (st, body) = s
        .post(
            "/message/send",
            json!({"from_uid": "alice", "channel_id": "", "channel_type": 1, "header": {"sync_once": 1},
                                      "subscribers": ["carol"], "payload": b64("{}")}),
        )
        .await;
    assert_eq!((st, body), (200, json!({"status": 200})));
    let cmd = carol
        .recv(LONG, true)
        .await
        .expect("carol gets the CMD live");
    assert_eq!(cmd["params"]["header"]["syncOnce"], true);
    assert_eq!(cmd["params"]["fromUid"], "alice");
    assert_eq!(cmd["params"]["channelId"], "alice");
    assert!(
        bob.recv(SHORT, true).await.is_none(),
        "only the listed subscribers"
    );
}
