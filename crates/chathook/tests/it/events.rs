//! The event log: what each action appends, and the consumer API (cursor, ack, wait, retention).

use std::time::Duration;

use chathook_events::{Event, PresenceReason, StartAt};
use serde_json::json;

use crate::util::*;

fn names(events: &[chathook_events::LoggedEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.event.name()).collect()
}

#[tokio::test]
async fn presence_events_carry_wukongim_counts() {
    let s = TestServer::start().await;
    let a1 = s.login("alice", 0).await;
    let a2 = s.login("alice", 0).await;
    let w = s.login("alice", 1).await;
    let online: Vec<_> = s
        .events()
        .await
        .into_iter()
        .filter_map(|e| match e.event {
            Event::UserOnline(c) => Some((
                c.device_flag,
                c.device_online_count,
                c.total_online_count,
                c.reason,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        online,
        vec![
            (0, 1, 1, PresenceReason::Login),
            (0, 2, 2, PresenceReason::Login),
            (1, 1, 3, PresenceReason::Login)
        ]
    );
    drop(a1);
    s.wait_event(
        "first offline",
        |e| matches!(&e.event, Event::UserOffline(c) if c.total_online_count == 2),
    )
    .await;
    let off = s
        .events()
        .await
        .into_iter()
        .find_map(|e| match e.event {
            Event::UserOffline(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (
            off.device_flag,
            off.device_online_count,
            off.total_online_count
        ),
        (0, 1, 2)
    );
    assert_eq!(off.reason, PresenceReason::LinkClosed);
    drop((a2, w));
}

#[tokio::test]
async fn messages_append_sent_and_offline_events_before_the_ack() {
    let s = TestServer::start().await;
    s.group("g", &["alice", "bob", "carol", "dave"]).await;
    let mut alice = s.login("alice", 0).await;
    let _bob = s.login_primary("bob", 0).await;
    // dave is connected, but only on a secondary device: WuKongIM still pushes to him
    let _dave = s.login("dave", 1).await;
    let before = s.server().store().head();
    let ack = alice.send_msg("g", 2, "e-1", "hello").await;
    // the ack came after the commit: the events are already readable
    let after = s.server().store().read_after(before, 100).await.unwrap();
    assert_eq!(names(&after), vec!["message.sent", "message.offline"]);
    let Event::MessageSent(m) = &after[0].event else {
        panic!()
    };
    assert_eq!(
        m.message_id.to_string(),
        ack["result"]["messageId"].as_str().unwrap()
    );
    assert_eq!(m.payload, br#"{"content":"hello","type":1}"#.to_vec());
    let Event::MessageOffline(o) = &after[1].event else {
        panic!()
    };
    assert_eq!(
        o.to_uids,
        vec!["carol".to_string(), "dave".to_string()],
        "only members with no primary connection, never the sender"
    );
    assert_eq!(o.source_id, 1, "the node id");
    assert_eq!(o.message, *m);

    // everyone on a primary device: no offline event
    let _carol = s.login_primary("carol", 0).await;
    let _dave_app = s.login_primary("dave", 0).await;
    let before = s.server().store().head();
    alice.send_msg("g", 2, "e-2", "all here").await;
    let after = s.server().store().read_after(before, 100).await.unwrap();
    assert_eq!(names(&after), vec!["message.sent"]);
    // a duplicate appends nothing
    let head = s.server().store().head();
    alice.send_msg("g", 2, "e-2", "all here").await;
    assert_eq!(s.server().store().head(), head);
}

#[tokio::test]
async fn group_profile_and_live_group_events() {
    let s = TestServer::start().await;
    let (st, _) = s.post("/channel", json!({"channel_id": "live1", "channel_type": 2, "live": 1, "subscribers": ["alice", "bob"]})).await;
    assert_eq!(st, 200);
    s.post(
        "/channel/subscriber_add",
        json!({"channel_id": "live1", "channel_type": 2, "subscribers": ["bob", "carol"]}),
    )
    .await;
    s.post(
        "/channel/subscriber_remove",
        json!({"channel_id": "live1", "channel_type": 2, "subscribers": ["alice", "zed"]}),
    )
    .await;
    let bob = s.login("bob", 1).await;
    drop(bob);
    s.wait_event(
        "bob offline",
        |e| matches!(&e.event, Event::UserOffline(c) if c.uid == "bob"),
    )
    .await;
    s.post(
        "/channel/delete",
        json!({"channel_id": "live1", "channel_type": 2}),
    )
    .await;
    let (st, body) = s
        .call(
            "PUT",
            "/v1/users/bob/profile",
            Some(json!({"name": "Bob", "avatar": "https://x/b.png", "custom": {"team": "blue"}})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200, "{body}");

    let events = s.events().await;
    let relevant: Vec<String> = events
        .iter()
        .map(|e| match &e.event {
            Event::GroupCreated(g) => format!("created {} {:?}", g.channel_id, g.uids),
            Event::GroupMemberAdded(g) => format!("added {:?}", g.uids),
            Event::GroupMemberRemoved(g) => format!("removed {:?}", g.uids),
            Event::GroupDismissed(g) => format!("dismissed {}", g.channel_id),
            Event::GroupMemberOnlineStatus(l) => format!(
                "live {} {} {} {}",
                l.channel_id, l.uid, l.device_flag, l.online
            ),
            Event::ProfileChanged(p) => format!("profile {} {} {:?}", p.uid, p.name, p.custom),
            Event::UserOnline(c) => format!("online {}", c.uid),
            Event::UserOffline(c) => format!("offline {}", c.uid),
            other => other.name().to_string(),
        })
        .collect();
    assert_eq!(
        relevant,
        vec![
            "created live1 [\"alice\", \"bob\"]",
            "added [\"carol\"]",
            "removed [\"alice\"]",
            "online bob",
            "live live1 bob 1 true",
            "offline bob",
            "live live1 bob 1 false",
            "dismissed live1",
            "profile bob Bob {\"team\": \"blue\"}",
        ]
    );
    // a dismissed (deleted) group is live no more
    let _bob = s.login("bob", 1).await;
    let last = s.events().await.pop().unwrap();
    assert_eq!(last.event.name(), "user.online");
}

#[tokio::test]
async fn consumer_cursor_ack_wait_and_retention() {
    let s = TestServer::start().await;
    let log = s.server().store().clone();
    s.rest_send("alice", "bob", 1, "before").await;
    let head = log.head();
    assert_eq!(
        log.register_consumer("late", StartAt::Head).await.unwrap(),
        head
    );
    assert_eq!(
        log.register_consumer("early", StartAt::Beginning)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        log.register_consumer("late", StartAt::Beginning)
            .await
            .unwrap(),
        head,
        "registration is idempotent"
    );

    // wait_beyond wakes on the next commit
    let waiter = {
        let log = log.clone();
        tokio::spawn(async move { log.wait_beyond(head).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    s.rest_send("alice", "bob", 1, "after").await;
    tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .unwrap()
        .unwrap();

    let page = log.read_after(head, 10).await.unwrap();
    assert!(page.iter().all(|e| e.position > head));
    assert_eq!(page[0].event.name(), "message.sent");
    let positions: Vec<u64> = page.iter().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    log.ack("late", positions[0]).await.unwrap();
    assert_eq!(log.consumer_position("late").await.unwrap(), positions[0]);
    log.ack("late", 1).await.unwrap();
    assert_eq!(
        log.consumer_position("late").await.unwrap(),
        positions[0],
        "acks never go back"
    );
    assert!(log.ack("nobody", 1).await.is_err());

    // retention keeps what "early" has not acknowledged, even when old
    let all = log.read_after(0, 1000).await.unwrap().len();
    let (_, removed) = log.prune(3600, 0).await.unwrap();
    assert_eq!(removed, 0);
    assert_eq!(log.read_after(0, 1000).await.unwrap().len(), all);
    log.ack("early", head).await.unwrap();
    let (_, removed) = log.prune(3600, 0).await.unwrap();
    assert!(removed > 0);
    let left = log.read_after(0, 1000).await.unwrap();
    assert!(left.iter().all(|e| e.position > head));
    // and a young event is kept whatever the acks
    log.remove_consumer("early").await.unwrap();
    log.remove_consumer("late").await.unwrap();
    let (_, removed) = log.prune(3600, 3_600_000).await.unwrap();
    assert_eq!(removed, 0);
}

#[tokio::test]
async fn events_name_the_client_they_came_from() {
    let s = TestServer::start().await;
    s.token("alice", "t-alice", 0, 1).await;
    // the platform a client names at connect, in Tencent's words (case does not matter)
    let mut phone = Client::open(&s.ws).await;
    let r = phone
        .request(
            "connect",
            json!({"uid": "alice", "token": "t-alice", "deviceFlag": 0, "platform": "ios"}),
        )
        .await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    phone.send_msg("bob", 1, "c1", "from the phone").await;
    s.rest_send("bob", "alice", 1, "from the backend").await;
    // a second primary login with the same device flag replaces the phone
    let mut tablet = Client::open(&s.ws).await;
    let r = tablet
        .request(
            "connect",
            json!({"uid": "alice", "token": "t-alice", "deviceFlag": 0, "platform": "iPad"}),
        )
        .await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    let web = s.login("carol", 1).await;
    s.wait_event(
        "carol online",
        |e| matches!(&e.event, Event::UserOnline(c) if c.uid == "carol"),
    )
    .await;
    drop(web);

    let events = s.events().await;
    let online: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::UserOnline(c) => Some(c),
            _ => None,
        })
        .collect();
    let client =
        |c: &chathook_events::PresenceChange| (c.client.ip.clone(), c.client.platform.clone());
    assert_eq!(client(online[0]), ("127.0.0.1".into(), "iOS".into()));
    assert!(online[0].kicked_platforms.is_empty());
    assert_eq!(client(online[1]), ("127.0.0.1".into(), "iPad".into()));
    assert_eq!(online[1].kicked_platforms, vec!["iOS".to_string()]);
    assert_eq!(
        client(online[2]),
        ("127.0.0.1".into(), "Web".into()),
        "a web device flag without a platform"
    );
    let senders: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::MessageSent(m) => Some((
                m.from_uid.clone(),
                m.sender.platform.clone(),
                m.sender.ip.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        senders,
        vec![
            ("alice".into(), "iOS".into(), "127.0.0.1".into()),
            ("bob".into(), "RESTAPI".into(), "127.0.0.1".into()),
        ]
    );
}
