//! A Go backend marshals an empty slice or map it does not tag `omitempty` as `null`: on every WuKongIM
//! route with a JSON object body, each key (and each key of a nested object) set to `null` is answered
//! exactly as if the key were absent: the same status, the same field named in an error.

use serde_json::{json, Value};

use crate::util::*;

/// A valid body for every WuKongIM POST route that takes a JSON object (several for some).
fn samples() -> Vec<(&'static str, Value)> {
    let header = json!({"no_persist": 0, "red_dot": 1, "sync_once": 0});
    let list = |uids: &[&str]| json!({"channel_id": "g", "channel_type": 2, "uids": uids});
    vec![
        (
            "/user/token",
            json!({"uid": "alice", "token": "t-alice", "device_flag": 0, "device_level": 0}),
        ),
        (
            "/user/device_quit",
            json!({"uid": "carl", "device_flag": 0}),
        ),
        ("/user/systemuids_add", json!({"uids": ["sys1"]})),
        ("/user/systemuids_remove", json!({"uids": ["sys1"]})),
        ("/conn/kick", json!({"uid": "alice", "conn_id": 12345})),
        (
            "/conn/remove",
            json!({"uid": "alice", "conn_id": 12345, "node_id": 0, "op_node_id": 0}),
        ),
        (
            "/channel",
            json!({"channel_id": "g", "channel_type": 2, "large": 0, "ban": 0, "disband": 0,
            "reset": 0, "live": 0, "subscribers": ["alice", "bob"]}),
        ),
        (
            "/channel/info",
            json!({"channel_id": "g", "channel_type": 2, "large": 0, "ban": 0, "disband": 0, "live": 0}),
        ),
        (
            "/channel/subscriber_add",
            json!({"channel_id": "g", "channel_type": 2, "reset": 0,
            "temp_subscriber": 0, "subscribers": ["carol"]}),
        ),
        (
            "/channel/subscriber_remove",
            json!({"channel_id": "g", "channel_type": 2, "subscribers": ["carol"]}),
        ),
        (
            "/channel/delete",
            json!({"channel_id": "gone", "channel_type": 2}),
        ),
        ("/channel/blacklist_add", list(&["dave"])),
        ("/channel/blacklist_remove", list(&["dave"])),
        ("/channel/blacklist_set", list(&[])),
        ("/channel/whitelist_add", list(&["alice"])),
        ("/channel/whitelist_remove", list(&["alice"])),
        ("/channel/whitelist_set", list(&[])),
        (
            "/message/send",
            json!({"header": header, "client_msg_no": "", "from_uid": "alice", "channel_id": "g",
            "channel_type": 2, "expire": 0, "payload": "e30=", "skip_before_send": false}),
        ),
        (
            "/message/send",
            json!({"header": header, "from_uid": "alice", "channel_id": "", "channel_type": 0,
            "subscribers": ["bob"], "payload": "e30="}),
        ),
        (
            "/message/sendbatch",
            json!({"header": header, "from_uid": "alice", "subscribers": ["bob"],
            "payload": "e30=", "skip_before_send": false}),
        ),
        (
            "/channel/messagesync",
            json!({"login_uid": "alice", "channel_id": "g", "channel_type": 2,
            "start_message_seq": 0, "end_message_seq": 0, "limit": 10, "pull_mode": 0}),
        ),
        (
            "/messages",
            json!({"login_uid": "alice", "channel_id": "g", "channel_type": 2,
            "message_seqs": [1], "message_ids": [], "client_msg_nos": []}),
        ),
        (
            "/messages/deleteRange",
            json!({"login_uid": "alice", "channel_id": "g", "channel_type": 2, "start_msg_seq": 9,
                "end_msg_seq": 9}),
        ),
        (
            "/message",
            json!({"login_uid": "alice", "channel_id": "g", "channel_type": 2, "message_id": 1,
                "client_msg_no": ""}),
        ),
        (
            "/message/sync",
            json!({"uid": "bob", "message_seq": 0, "limit": 10}),
        ),
        (
            "/message/syncack",
            json!({"uid": "bob", "last_message_seq": 0}),
        ),
        ("/conversation/channels", json!({"uid": "alice"})),
        (
            "/conversation/syncMessages",
            json!({"uid": "alice", "channels": [{"channel_id": "g", "channel_type": 2, "last_msg_seq": 0}],
                "msg_count": 2, "order_by_last": 1}),
        ),
        (
            "/conversation/sync",
            json!({"uid": "alice", "version": 0, "last_msg_seqs": "", "msg_count": 1,
            "only_unread": 0, "exclude_channel_types": [], "page": 0, "page_size": 0}),
        ),
        (
            "/conversations/setUnread",
            json!({"uid": "alice", "channel_id": "g", "channel_type": 2, "unread": 1}),
        ),
        (
            "/conversations/clearUnread",
            json!({"uid": "alice", "channel_id": "g", "channel_type": 2}),
        ),
        (
            "/conversations/delete",
            json!({"uid": "alice", "channel_id": "g", "channel_type": 2}),
        ),
    ]
}

/// Routes whose body is a JSON array (nothing to null inside).
const ARRAY_BODIES: [&str; 2] = ["/user/onlinestatus", "/route/batch"];

/// Every way to leave one key out of `body`: (its path, the body with it null, the body without it).
fn variants(body: &Value) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    let Some(top) = body.as_object() else {
        return out;
    };
    for (key, value) in top {
        let (mut nulled, mut absent) = (body.clone(), body.clone());
        nulled[key] = Value::Null;
        absent.as_object_mut().unwrap().remove(key);
        out.push((key.clone(), nulled, absent));
        for inner in value.as_object().map(|o| o.keys()).into_iter().flatten() {
            let (mut nulled, mut absent) = (body.clone(), body.clone());
            nulled[key][inner] = Value::Null;
            absent[key].as_object_mut().unwrap().remove(inner);
            out.push((format!("{key}.{inner}"), nulled, absent));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_is_taken_as_absent_on_every_wukongim_route() {
    let samples = samples();
    for (method, path) in chathook_im::api::ROUTES {
        if method != "POST" || path.starts_with("/v1/") || ARRAY_BODIES.contains(&path) {
            continue;
        }
        assert!(
            samples.iter().any(|(p, _)| p == &path),
            "no sample body for {path}: add one"
        );
    }
    let s = TestServer::start().await;
    for uid in ["alice", "bob", "carol", "dave"] {
        s.token(uid, &format!("t-{uid}"), 0, 0).await;
    }
    s.group("g", &["alice", "bob"]).await;
    s.rest_send("alice", "g", 2, "first").await;
    let mut checked = 0;
    for (path, body) in &samples {
        for (key, nulled, absent) in variants(body) {
            // the same state before each call: the group may have been changed or deleted
            s.group("g", &["alice", "bob"]).await;
            s.group("gone", &["alice"]).await;
            let (st_absent, answer_absent) = s.post(path, absent).await;
            s.group("g", &["alice", "bob"]).await;
            s.group("gone", &["alice"]).await;
            let (st_null, answer_null) = s.post(path, nulled).await;
            assert_eq!(
                (st_null, &answer_null["field"]),
                (st_absent, &answer_absent["field"]),
                "{path} with {key}: null answered {answer_null}, absent {answer_absent}"
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} keys checked");
}
