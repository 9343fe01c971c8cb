//! WuKongIM's conversation routes as a backend calls them: `/conversation/sync` (unread counts, last
//! message, recents, the client's known seqs, only_unread, exclusions, pages) and the unread and delete
//! routes.

use serde_json::{json, Value};

use crate::util::*;

async fn conversations(s: &TestServer, body: Value) -> Vec<Value> {
    let (st, reply) = s.post("/conversation/sync", body).await;
    assert_eq!(st, 200, "{reply}");
    reply
        .as_array()
        .unwrap_or_else(|| panic!("a bare array: {reply}"))
        .clone()
}

fn by_channel<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["channel_id"] == id)
}

#[tokio::test]
async fn conversations_follow_every_message_with_unread_counts_and_recents() {
    let s = TestServer::start().await;
    s.group("g", &["alice", "bob", "carol"]).await;
    for i in 1..=3 {
        s.rest_send("alice", "g", 2, &format!("g{i}")).await;
    }
    s.rest_send("carol", "bob", 1, "psst").await;
    let list = conversations(&s, json!({"uid": "bob", "msg_count": 2})).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let g = by_channel(&list, "g").expect("the group");
    assert_eq!(g["channel_type"], 2);
    assert_eq!(g["unread"], 3);
    assert_eq!(g["last_msg_seq"], 3);
    assert_eq!(g["readed_to_msg_seq"], 0);
    assert_eq!(g["offset_msg_seq"], 0);
    assert!(g["last_client_msg_no"].is_string());
    let recents: Vec<u64> = g["recents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(recents, vec![3, 2], "the newest msg_count, newest first");
    assert_eq!(
        g["version"].as_i64().unwrap(),
        g["timestamp"].as_i64().unwrap() * 1_000_000_000
    );
    let p = by_channel(&list, "carol").expect("the person channel, named by the other user");
    assert_eq!(
        (p["channel_type"].as_u64(), p["unread"].as_u64()),
        (Some(1), Some(1))
    );
    // the sender's own view: its last message is its own, so nothing unread
    let carol = conversations(&s, json!({"uid": "carol", "msg_count": 1})).await;
    let to_bob = by_channel(&carol, "bob").expect("carol's conversation with bob");
    assert_eq!(
        (
            to_bob["unread"].as_u64(),
            to_bob["readed_to_msg_seq"].as_u64()
        ),
        (Some(0), Some(1))
    );
    // bob answers in the group: what came before his own message counts as read
    s.rest_send("bob", "g", 2, "hi").await;
    s.rest_send("alice", "g", 2, "after bob").await;
    let list = conversations(&s, json!({"uid": "bob", "msg_count": 1})).await;
    let g = by_channel(&list, "g").unwrap();
    assert_eq!(
        (g["unread"].as_u64(), g["readed_to_msg_seq"].as_u64()),
        (Some(1), Some(4))
    );
    // WuKongIM answers nothing without msg_count
    assert!(conversations(&s, json!({"uid": "bob"})).await.is_empty());
    // a user with nothing
    assert!(conversations(&s, json!({"uid": "nobody", "msg_count": 5}))
        .await
        .is_empty());
}

#[tokio::test]
async fn unread_routes_move_the_read_position_and_delete_hides_until_new_messages() {
    let s = TestServer::start().await;
    s.group("g", &["alice", "bob"]).await;
    for i in 1..=5 {
        s.rest_send("alice", "g", 2, &format!("m{i}")).await;
    }
    let unread = |list: &[Value]| by_channel(list, "g").map(|c| c["unread"].as_u64().unwrap());
    s.post_ok(
        "/conversations/setUnread",
        json!({"uid": "bob", "channel_id": "g", "channel_type": 2, "unread": 2}),
    )
    .await;
    let list = conversations(&s, json!({"uid": "bob", "msg_count": 1})).await;
    assert_eq!(unread(&list), Some(2));
    assert_eq!(by_channel(&list, "g").unwrap()["readed_to_msg_seq"], 3);
    // the read position never goes back (WuKongIM's rule)
    s.post_ok(
        "/conversations/setUnread",
        json!({"uid": "bob", "channel_id": "g", "channel_type": 2, "unread": 4}),
    )
    .await;
    assert_eq!(
        unread(&conversations(&s, json!({"uid": "bob", "msg_count": 1})).await),
        Some(2)
    );
    // only_unread and version select conversations with news after the read position
    let news = conversations(&s, json!({"uid": "bob", "msg_count": 10, "only_unread": 1})).await;
    let recents = by_channel(&news, "g").unwrap()["recents"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(recents, 2, "only the unread messages");
    s.post_ok(
        "/conversations/clearUnread",
        json!({"uid": "bob", "channel_id": "g", "channel_type": 2}),
    )
    .await;
    assert_eq!(
        unread(&conversations(&s, json!({"uid": "bob", "msg_count": 1})).await),
        Some(0)
    );
    assert!(
        conversations(&s, json!({"uid": "bob", "msg_count": 1, "only_unread": 1}))
            .await
            .is_empty()
    );
    assert!(
        conversations(&s, json!({"uid": "bob", "msg_count": 1, "version": 1}))
            .await
            .is_empty()
    );
    // delete: gone until a newer message, which then shows alone
    s.post_ok(
        "/conversations/delete",
        json!({"uid": "bob", "channel_id": "g", "channel_type": 2}),
    )
    .await;
    assert!(conversations(&s, json!({"uid": "bob", "msg_count": 5}))
        .await
        .is_empty());
    s.rest_send("alice", "g", 2, "m6").await;
    let list = conversations(&s, json!({"uid": "bob", "msg_count": 5})).await;
    let g = by_channel(&list, "g").expect("back with the new message");
    assert_eq!(g["recents"].as_array().unwrap().len(), 1);
    assert_eq!(g["unread"], 1);
    // alice's own state is hers alone
    assert!(by_channel(
        &conversations(&s, json!({"uid": "alice", "msg_count": 1})).await,
        "g"
    )
    .is_some());
    let (st, body) = s
        .post(
            "/conversations/setUnread",
            json!({"uid": "bob", "channel_id": "", "channel_type": 2}),
        )
        .await;
    assert_eq!((st, body["field"].as_str()), (400, Some("channel_id")));
}

#[tokio::test]
async fn client_seqs_exclusions_and_pages_shape_the_list() {
    let s = TestServer::start().await;
    for g in ["g1", "g2", "g3"] {
        s.group(g, &["alice", "bob"]).await;
        s.rest_send("alice", g, 2, g).await;
    }
    s.rest_send("alice", "bob", 1, "direct").await;
    let all = conversations(&s, json!({"uid": "bob", "msg_count": 1})).await;
    assert_eq!(all.len(), 4);
    // newest first: the direct message was last
    assert_eq!(all[0]["channel_id"], "alice");
    // what the client already has up to date is left out; newer than it is kept
    let list = conversations(
        &s,
        json!({"uid": "bob", "msg_count": 1, "last_msg_seqs": "g1:2:1|g2:2:0|alice:1:1"}),
    )
    .await;
    let ids: Vec<&str> = list
        .iter()
        .map(|c| c["channel_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"g2") && ids.contains(&"g3"));
    // excluded types, unless the client named the channel
    let list = conversations(
        &s,
        json!({"uid": "bob", "msg_count": 1, "exclude_channel_types": [1]}),
    )
    .await;
    assert!(by_channel(&list, "alice").is_none() && list.len() == 3);
    // pages of the list
    let p1 = conversations(
        &s,
        json!({"uid": "bob", "msg_count": 1, "page": 1, "page_size": 3}),
    )
    .await;
    let p2 = conversations(
        &s,
        json!({"uid": "bob", "msg_count": 1, "page": 2, "page_size": 3}),
    )
    .await;
    let p3 = conversations(
        &s,
        json!({"uid": "bob", "msg_count": 1, "page": 3, "page_size": 3}),
    )
    .await;
    assert_eq!((p1.len(), p2.len(), p3.len()), (3, 1, 0));
    // the list is the store's, not memory's
    let s = s.restart(|_| {}).await;
    assert_eq!(
        conversations(&s, json!({"uid": "alice", "msg_count": 1}))
            .await
            .len(),
        4
    );
}

#[tokio::test]
async fn sync_messages_answers_each_channels_recent_messages_from_a_seq() {
    let s = TestServer::start().await;
    s.group("g", &["alice", "bob"]).await;
    for n in 1..=5 {
        s.rest_send("bob", "g", 2, &format!("g{n}")).await;
    }
    for n in 1..=2 {
        s.rest_send("bob", "alice", 1, &format!("p{n}")).await;
    }
    let contents = |c: &Value| -> Vec<String> {
        c["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                payload_json(&m["payload"])["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    // newest first, down to last_msg_seq
    let (st, body) = s
        .post(
            "/conversation/syncMessages",
            json!({"uid": "alice", "msg_count": 2, "order_by_last": 1, "channels": [
                {"channel_id": "g", "channel_type": 2, "last_msg_seq": 0},
                {"channel_id": "bob", "channel_type": 1, "last_msg_seq": 2}]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let answer = body.as_array().expect("a bare array");
    assert_eq!(
        (answer[0]["channel_id"].as_str(), contents(&answer[0])),
        (Some("g"), vec!["g5".to_string(), "g4".into()])
    );
    assert_eq!(
        (answer[1]["channel_id"].as_str(), contents(&answer[1])),
        (Some("bob"), vec!["p2".to_string()])
    );
    // oldest first, from last_msg_seq
    let (_, body) = s
        .post(
            "/conversation/syncMessages",
            json!({"uid": "alice", "msg_count": 2, "order_by_last": 0,
                "channels": [{"channel_id": "g", "channel_type": 2, "last_msg_seq": 3}]}),
        )
        .await;
    assert_eq!(contents(&body[0]), ["g3", "g4"]);
    // a channel's fault names it
    let (st, body) = s
        .post(
            "/conversation/syncMessages",
            json!({"uid": "alice", "channels": [{"channel_id": "g", "channel_type": 2}, {"channel_id": "g", "channel_type": 0}]}),
        )
        .await;
    assert_eq!(
        (st, body["field"].as_str()),
        (400, Some("channels[1].channel_type")),
        "{body}"
    );
}

#[tokio::test]
async fn conversation_channels_lists_the_channels_of_a_users_conversations() {
    let s = TestServer::start().await;
    s.group("g", &["alice", "bob"]).await;
    s.rest_send("bob", "g", 2, "to the group").await;
    s.rest_send("bob", "alice", 1, "to alice").await;
    let (st, body) = s
        .post("/conversation/channels", json!({"uid": "alice"}))
        .await;
    assert_eq!(st, 200, "{body}");
    let mut channels: Vec<(String, u64)> = body
        .as_array()
        .expect("a bare array")
        .iter()
        .map(|c| {
            (
                c["channel_id"].as_str().unwrap().to_string(),
                c["channel_type"].as_u64().unwrap(),
            )
        })
        .collect();
    channels.sort();
    assert_eq!(channels, [("bob".to_string(), 1), ("g".to_string(), 2)]);
    let (st, body) = s.post("/conversation/channels", json!({"uid": ""})).await;
    assert_eq!((st, body["field"].as_str()), (400, Some("uid")));
}
