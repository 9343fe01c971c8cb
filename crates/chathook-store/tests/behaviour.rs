//! Behaviour every store must have, written once and run against each backend: the embedded SQLite
//! store and the PostgreSQL store (a real cluster started for the test). A trait the PostgreSQL store
//! implements gets its behaviour here, not a copy per backend.

use std::collections::BTreeMap;

use std::sync::Arc;

use chathook_events::{Event, EventLog, Message, MessageHeader, ProfileChange, StartAt};
use chathook_store::{
    person_channel_key, AppendOutcome, AttemptQuery, AttemptRecord, ChannelDiff, ChannelFlags,
    ChannelRecord, ChannelStore, CmdQueueStore, ConnRecord, ConversationStore, Ingested,
    ListChange, Maintenance, MessageLookup, MessageStore, NewMessage, PendingDelivery, PgStore,
    PresenceStore, Profile, PullMode, RelayStore, SqliteOptions, SqliteStore, SubscriberChange,
    SyncQuery, TokenRecord, UidList, UserStore, WebhookStore,
};
use chathook_testkit::Postgres;

/// Tokens per device flag, system uids as a set, profiles with their event in the same commit.
async fn users(store: &(impl UserStore + EventLog)) {
    let token = |flag: u8, hash: &[u8], level: u8| TokenRecord {
        uid: "alice".into(),
        device_flag: flag,
        token_hash: hash.to_vec(),
        device_level: level,
    };
    store.set_token(token(0, b"app", 1)).await.unwrap();
    store.set_token(token(1, b"web", 0)).await.unwrap();
    store.set_token(token(0, b"app2", 0)).await.unwrap();
    assert_eq!(
        store.token("alice", 0).await.unwrap(),
        Some(token(0, b"app2", 0)),
        "a device flag's token is replaced"
    );
    assert_eq!(store.token("alice", 2).await.unwrap(), None);
    store.remove_tokens("alice", Some(1)).await.unwrap();
    assert_eq!(store.token("alice", 1).await.unwrap(), None);
    assert!(store.token("alice", 0).await.unwrap().is_some());
    store.remove_tokens("alice", None).await.unwrap();
    assert_eq!(store.token("alice", 0).await.unwrap(), None);

    let added = store
        .change_system_uids(vec!["sys-b".into(), "sys-a".into(), "sys-b".into()], false)
        .await
        .unwrap();
    assert_eq!(added, ["sys-a", "sys-b"]);
    let left = store
        .change_system_uids(vec!["sys-b".into(), "nobody".into()], true)
        .await
        .unwrap();
    assert_eq!(left, ["sys-a"]);
    assert_eq!(store.system_uids().await.unwrap(), ["sys-a"]);

    assert_eq!(store.profile("bob").await.unwrap(), None);
    let head = store.head();
    let profile = Profile {
        uid: "bob".into(),
        name: "Bob".into(),
        avatar: "https://a.example/b.png".into(),
        custom: BTreeMap::from([("team".to_string(), "blue".to_string())]),
    };
    store
        .set_profile(
            profile.clone(),
            Box::new(|p: &Profile| {
                vec![Event::ProfileChanged(ProfileChange {
                    uid: p.uid.clone(),
                    name: p.name.clone(),
                    avatar: p.avatar.clone(),
                    custom: p.custom.clone(),
                })]
            }),
        )
        .await
        .unwrap();
    assert_eq!(store.profile("bob").await.unwrap(), Some(profile.clone()));
    // the event is in the log, committed with the profile
    assert_eq!(store.head(), head + 1);
    let logged = store.read_after(head, 10).await.unwrap();
    assert_eq!(logged.len(), 1);
    assert!(
        matches!(&logged[0].event, Event::ProfileChanged(c) if c.name == "Bob" && c.custom["team"] == "blue")
    );
    // set again: replaced, not merged
    let renamed = Profile {
        name: "Robert".into(),
        custom: BTreeMap::new(),
        ..profile
    };
    store
        .set_profile(renamed.clone(), Box::new(|_: &Profile| Vec::new()))
        .await
        .unwrap();
    assert_eq!(store.profile("bob").await.unwrap(), Some(renamed));
}

/// Endpoint documents and health, settings, and a delivery's life: parked, due, completed or dead,
/// revived one by one or since a time.
async fn webhook_state(store: &(impl WebhookStore + EventLog)) {
    store.put_endpoint("ep1", "{\"v\":1}".into()).await.unwrap();
    store.put_endpoint("ep2", "{}".into()).await.unwrap();
    store.put_endpoint("ep1", "{\"v\":2}".into()).await.unwrap();
    store
        .put_endpoint_health("ep1", "{\"ok\":true}".into())
        .await
        .unwrap();
    assert_eq!(
        store.endpoints().await.unwrap(),
        [
            ("ep1".to_string(), "{\"v\":2}".to_string()),
            ("ep2".into(), "{}".into())
        ]
    );
    assert_eq!(store.endpoint_health().await.unwrap().len(), 1);
    assert_eq!(store.setting("features").await.unwrap(), None);
    store.put_setting("features", "a".into()).await.unwrap();
    store.put_setting("features", "b".into()).await.unwrap();
    assert_eq!(
        store.setting("features").await.unwrap().as_deref(),
        Some("b")
    );

    let pending = |id: &str, next_at_ms: i64, dead: bool, dead_at_ms: i64| PendingDelivery {
        delivery_id: id.into(),
        endpoint_id: "ep1".into(),
        event: "message.sent".into(),
        query: String::new(),
        body: format!("{{\"id\":\"{id}\"}}").into_bytes(),
        attempts: 2,
        next_at_ms,
        event_at_ms: next_at_ms - 100,
        last_error: "HTTP 500".into(),
        dead,
        dead_at_ms,
        source: format!("src_{id},local"),
    };
    store
        .park_deliveries(vec![
            pending("now", 1_000, false, 0),
            pending("later", 5_000, false, 0),
            pending("dead-old", 900, true, 2_000),
            pending("dead-new", 950, true, 3_000),
        ])
        .await
        .unwrap();
    let due = store.due_deliveries("ep1", 1_500, 10).await.unwrap();
    assert_eq!(due, [pending("now", 1_000, false, 0)]);
    assert_eq!(store.next_due("ep1", 1_500).await.unwrap(), Some(5_000));
    assert_eq!(store.next_due("ep1", 5_000).await.unwrap(), None);
    assert_eq!(
        store.pending_summary("ep1").await.unwrap(),
        (2, 2, Some(900)),
        "two live, two dead, the oldest live event"
    );
    // parking again replaces (by endpoint and delivery id)
    store
        .park_deliveries(vec![PendingDelivery {
            attempts: 3,
            ..pending("now", 2_000, false, 0)
        }])
        .await
        .unwrap();
    assert_eq!(
        store.due_deliveries("ep1", 2_000, 10).await.unwrap()[0].attempts,
        3
    );
    store
        .complete_deliveries("ep1", vec!["now".into(), "unknown".into()])
        .await
        .unwrap();
    assert_eq!(
        store.due_deliveries("ep1", 9_999, 10).await.unwrap().len(),
        1
    );
    // dead letters, newest first; revived one by id, then every one dead since a time
    let dead: Vec<String> = store
        .dead_letters("ep1", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.delivery_id)
        .collect();
    assert_eq!(dead, ["dead-new", "dead-old"]);
    assert_eq!(
        store
            .revive("ep1", Some("dead-old"), 0, 7_000)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .revive("ep1", Some("dead-old"), 0, 7_000)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.revive("ep1", None, 3_001, 7_000).await.unwrap(), 0);
    assert_eq!(store.revive("ep1", None, 3_000, 7_000).await.unwrap(), 1);
    let revived = store.due_deliveries("ep1", 7_000, 10).await.unwrap();
    let revived: Vec<&PendingDelivery> = revived
        .iter()
        .filter(|d| d.delivery_id.starts_with("dead-"))
        .collect();
    assert_eq!(revived.len(), 2);
    assert!(revived
        .iter()
        .all(|d| !d.dead && d.attempts == 0 && d.next_at_ms == 7_000));
    assert_eq!(store.pending_summary("ep1").await.unwrap().1, 0);

    // deleting an endpoint takes its health, deliveries, attempts and event-log consumer along
    store
        .register_consumer("webhook:ep1", StartAt::Head)
        .await
        .unwrap();
    store
        .record_attempts(vec![attempt("ep1", 1, true, "message.sent")])
        .await
        .unwrap();
    assert!(store.delete_endpoint("ep1", "webhook:ep1").await.unwrap());
    assert!(!store.delete_endpoint("ep1", "webhook:ep1").await.unwrap());
    assert_eq!(store.endpoints().await.unwrap().len(), 1);
    assert!(store.endpoint_health().await.unwrap().is_empty());
    assert_eq!(store.pending_summary("ep1").await.unwrap(), (0, 0, None));
    assert!(store.consumer_position("webhook:ep1").await.is_err());
    assert!(store
        .attempts(AttemptQuery {
            endpoint_id: "ep1".into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
}

fn attempt(endpoint: &str, at_ms: i64, success: bool, event: &str) -> AttemptRecord {
    AttemptRecord {
        endpoint_id: endpoint.into(),
        delivery_id: format!("d{at_ms}"),
        event: event.into(),
        at_ms,
        success,
        status: Some(if success { 200 } else { 500 }),
        latency_ms: 1,
        error: String::new(),
        response: String::new(),
        request: format!("{{\"n\":{at_ms}}}"),
        source: if at_ms % 20 == 0 {
            "src_a".into()
        } else {
            "local".into()
        },
    }
}

/// The attempt log: pages and filters, one attempt with its request, and retention.
async fn attempt_log(store: &impl WebhookStore) {
    assert_eq!(
        store.prune_attempts(1_000).await.unwrap(),
        0,
        "an empty log"
    );
    // recorded in time order, in several batches; every third fails, every fifth is another event
    for batch in (0..100i64).collect::<Vec<_>>().chunks(7) {
        let records = batch
            .iter()
            .map(|i| {
                let event = if i % 5 == 0 {
                    "msg.notify"
                } else {
                    "message.sent"
                };
                attempt("ep", 1_000 + i * 10, i % 3 != 0, event)
            })
            .collect();
        store.record_attempts(records).await.unwrap();
    }
    let query = |q: AttemptQuery| async move { store.attempts(q).await.unwrap() };
    let all = query(AttemptQuery {
        endpoint_id: "ep".into(),
        limit: 1000,
        ..Default::default()
    })
    .await;
    assert_eq!(all.len(), 100);
    assert!(all.windows(2).all(|w| w[0].0 > w[1].0), "newest first");
    assert!(
        all.windows(2).all(|w| w[0].1.at_ms > w[1].1.at_ms),
        "ids follow the order attempts were recorded in"
    );
    // an attempt that got no response keeps its missing status
    let unanswered = AttemptRecord {
        status: None,
        error: "connection refused".into(),
        ..attempt("ep-down", 20_000, false, "message.sent")
    };
    store
        .record_attempts(vec![unanswered.clone()])
        .await
        .unwrap();
    let down = query(AttemptQuery {
        endpoint_id: "ep-down".into(),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(down.len(), 1);
    assert_eq!(
        (down[0].1.status, &down[0].1.error),
        (None, &unanswered.error)
    );
    assert!(
        all.iter().all(|(_, a)| a.request.is_empty()),
        "lists leave the request out"
    );
    assert!(
        all.iter()
            .all(|(_, a)| a.source == attempt("ep", a.at_ms, true, "").source),
        "each attempt keeps its source"
    );
    let failed = query(AttemptQuery {
        endpoint_id: "ep".into(),
        success: Some(false),
        limit: 1000,
        ..Default::default()
    })
    .await;
    assert_eq!(failed.len(), 34);
    let notify = query(AttemptQuery {
        endpoint_id: "ep".into(),
        event: Some("msg.notify".into()),
        limit: 1000,
        ..Default::default()
    })
    .await;
    assert_eq!(notify.len(), 20);
    // pages by id, both ways
    let (newest, _) = all[0];
    let page = query(AttemptQuery {
        endpoint_id: "ep".into(),
        before_id: Some(newest),
        limit: 3,
        ..Default::default()
    })
    .await;
    assert_eq!(
        page.iter().map(|r| r.0).collect::<Vec<_>>(),
        [all[1].0, all[2].0, all[3].0]
    );
    let after = query(AttemptQuery {
        endpoint_id: "ep".into(),
        after_id: Some(all[2].0),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(
        after.iter().map(|r| r.0).collect::<Vec<_>>(),
        [all[0].0, all[1].0]
    );
    let one = store.attempt("ep", newest).await.unwrap().unwrap();
    assert_eq!((one.at_ms, one.request.as_str()), (1_990, r#"{"n":1990}"#));
    assert_eq!(one.source, "local");
    assert!(store.attempt("other", newest).await.unwrap().is_none());
    // retention removes exactly the attempts started before the cutoff
    for (cutoff, removed, left) in [
        (1_000, 0, 100),
        (1_255, 26, 74),
        (1_255, 0, 74),
        (9_999, 74, 0),
    ] {
        assert_eq!(
            store.prune_attempts(cutoff).await.unwrap(),
            removed,
            "cutoff {cutoff}"
        );
        let kept = query(AttemptQuery {
            endpoint_id: "ep".into(),
            limit: 1000,
            ..Default::default()
        })
        .await;
        assert_eq!(kept.len(), left, "cutoff {cutoff}");
        assert!(kept.iter().all(|(_, a)| a.at_ms >= cutoff.min(1_990)));
    }
}

fn uids(list: &[&str]) -> Vec<String> {
    list.iter().map(|u| u.to_string()).collect()
}

/// A group's life: created with subscribers, changed (in insertion order), reset, its lists, live
/// groups, deleted (kept as disbanded) and set up again; each write's events in its commit.
async fn channels(store: &(impl ChannelStore + EventLog)) {
    let group = |live: bool, disband: bool| ChannelFlags {
        live,
        disband,
        ..ChannelFlags::new("g1", 2)
    };
    let add = |list: &[&str], reset: bool| SubscriberChange::Add {
        uids: uids(list),
        reset,
    };
    // each write's events name what it did
    let note = || -> chathook_store::EventsFor<ChannelDiff> {
        Box::new(|d: &ChannelDiff| {
            vec![Event::GroupMemberAdded(chathook_events::GroupChange {
                channel_id: d.channel.flags.channel_id.clone(),
                uids: d.added.clone(),
            })]
        })
    };
    assert_eq!(store.channel("g1", 2).await.unwrap(), None);
    let head = store.head();
    let diff = store
        .upsert_channel(group(false, false), add(&["a", "b"], false), note())
        .await
        .unwrap();
    assert!(diff.created && !diff.dismissed);
    assert_eq!(
        (diff.added.clone(), diff.removed.clone()),
        (uids(&["a", "b"]), vec![])
    );
    assert_eq!(store.head(), head + 1, "the event is in the same commit");
    let diff = store
        .upsert_channel(group(false, false), add(&["b", "c"], false), note())
        .await
        .unwrap();
    assert!(!diff.created);
    assert_eq!(diff.added, uids(&["c"]));
    assert_eq!(
        diff.channel.subscribers,
        uids(&["a", "b", "c"]),
        "insertion order"
    );
    let diff = store
        .upsert_channel(group(true, false), add(&["c", "d"], true), note())
        .await
        .unwrap();
    assert_eq!(
        (diff.added, diff.removed),
        (uids(&["d"]), uids(&["a", "b"]))
    );
    assert_eq!(diff.channel.subscribers, uids(&["c", "d"]));
    assert!(diff.channel.flags.live);
    // subscribers of a missing channel: nothing
    assert!(store
        .change_subscribers("nope", 2, add(&["x"], false), note())
        .await
        .unwrap()
        .is_none());
    let diff = store
        .change_subscribers(
            "g1",
            2,
            SubscriberChange::Remove {
                uids: uids(&["c", "x"]),
            },
            note(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((diff.added, diff.removed), (vec![], uids(&["c"])));
    // lists
    store
        .change_list(
            "g1",
            2,
            UidList::Blacklist,
            ListChange::Add(uids(&["x", "y"])),
            false,
        )
        .await
        .unwrap();
    store
        .change_list(
            "g1",
            2,
            UidList::Blacklist,
            ListChange::Remove(uids(&["x"])),
            false,
        )
        .await
        .unwrap();
    let ch = store
        .change_list(
            "g1",
            2,
            UidList::Whitelist,
            ListChange::Set(uids(&["w2", "w1"])),
            false,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ch.blacklist, ch.whitelist),
        (uids(&["y"]), uids(&["w2", "w1"]))
    );
    assert_eq!(
        store
            .change_list(
                "alice",
                1,
                UidList::Blacklist,
                ListChange::Add(uids(&["bob"])),
                false
            )
            .await
            .unwrap(),
        None
    );
    let own = store
        .change_list(
            "alice",
            1,
            UidList::Blacklist,
            ListChange::Add(uids(&["bob"])),
            true,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        own.flags,
        ChannelFlags::new("alice", 1),
        "created with every flag off"
    );
    assert_eq!(own.blacklist, uids(&["bob"]));
    // live groups
    let live: Vec<ChannelRecord> = store.live_channels().await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].subscribers, uids(&["d"]));
    // deleted: members and lists go, the channel stays as disbanded
    let head = store.head();
    let gone = store
        .delete_channel(
            "g1",
            2,
            Box::new(|c: &ChannelRecord| {
                vec![Event::GroupDismissed(chathook_events::GroupRef {
                    channel_id: c.flags.channel_id.clone(),
                })]
            }),
        )
        .await
        .unwrap();
    assert!(gone);
    assert_eq!(store.head(), head + 1);
    let kept = store.channel("g1", 2).await.unwrap().unwrap();
    assert!(kept.flags.disband);
    assert!(kept.subscribers.is_empty() && kept.blacklist.is_empty() && kept.whitelist.is_empty());
    assert!(!store
        .delete_channel("nope", 2, Box::new(|_: &ChannelRecord| Vec::new()))
        .await
        .unwrap());
    // set up again: created anew; disbanding through an upsert says so
    let again = store
        .upsert_channel(group(false, false), add(&["e"], false), note())
        .await
        .unwrap();
    assert!(again.created);
    let dismissed = store
        .upsert_channel(group(false, true), add(&[], false), note())
        .await
        .unwrap();
    assert!(dismissed.dismissed && !dismissed.created);
}

fn new_message(channel: &str, from: &str, client_msg_no: &str) -> NewMessage {
    NewMessage {
        channel_key: channel.into(),
        channel_id: channel.into(),
        channel_type: 2,
        client_msg_no: client_msg_no.into(),
        from_uid: from.into(),
        header: MessageHeader::default(),
        setting: 0,
        expire: 0,
        payload: format!("{{\"n\":\"{client_msg_no}\"}}").into_bytes(),
        cmd_recipients: Vec::new(),
        note: None,
    }
}

fn sent(m: &Message) -> Vec<Event> {
    vec![Event::MessageSent(m.clone())]
}

fn stored(outcome: AppendOutcome) -> Message {
    match outcome {
        AppendOutcome::Stored(m) => m,
        other => panic!("not stored: {other:?}"),
    }
}

/// History: concurrent senders get gap-free seqs and increasing ids, each message with its event in
/// the same commit; duplicates write nothing; pages both ways; lookups; CMD queues.
async fn messages<S>(store: Arc<S>)
where
    S: MessageStore + CmdQueueStore + EventLog + 'static,
{
    let head = store.head();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let m = store
                    .append_message(
                        new_message("g", "u", &format!("c{i}")),
                        3600,
                        Box::new(sent),
                    )
                    .await
                    .unwrap();
                let m = stored(m);
                (m.message_seq, m.message_id, i)
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results.sort();
    assert_eq!(
        results.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=100).collect::<Vec<u64>>()
    );
    assert!(
        results.windows(2).all(|w| w[0].1 < w[1].1),
        "ids increase with seqs"
    );
    assert_eq!(store.head(), head + 100, "one event per message");
    assert_eq!(store.last_seq("g", 2).await.unwrap(), 100);
    assert_eq!(store.last_seq("other", 2).await.unwrap(), 0);

    // many channels at once, one key sent ten times among them: one message takes it (and one seq),
    // the other nine answer with its ids; every channel's seqs stay gap-free
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let channel = format!("h{}", i % 3);
                let key = if i < 10 {
                    "ten-times".to_string()
                } else {
                    format!("d{i}")
                };
                let outcome = store
                    .append_message(new_message(&channel, "v", &key), 3600, Box::new(sent))
                    .await
                    .unwrap();
                (channel, outcome)
            })
        })
        .collect();
    let mut by_channel: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let (mut firsts, mut answered) = (Vec::new(), Vec::new());
    for t in tasks {
        let (channel, outcome) = t.await.unwrap();
        match outcome {
            AppendOutcome::Stored(m) => {
                if m.client_msg_no == "ten-times" {
                    firsts.push((m.message_id, m.message_seq));
                }
                by_channel.entry(channel).or_default().push(m.message_seq);
            }
            AppendOutcome::Duplicate {
                message_id,
                message_seq,
                ..
            } => answered.push((message_id, message_seq)),
        }
    }
    assert_eq!(firsts.len(), 1, "one of the ten is stored");
    assert_eq!(
        answered,
        vec![firsts[0]; 9],
        "the others answer with its ids"
    );
    for (channel, mut seqs) in by_channel {
        seqs.sort();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "{channel}"
        );
    }

    // a duplicate answers the first message and writes nothing
    let first = stored(
        store
            .append_message(new_message("g", "u", "same"), 3600, Box::new(sent))
            .await
            .unwrap(),
    );
    let head = store.head();
    let again = store
        .append_message(new_message("g", "u", "same"), 3600, Box::new(sent))
        .await
        .unwrap();
    assert_eq!(
        again,
        AppendOutcome::Duplicate {
            message_id: first.message_id,
            message_seq: first.message_seq,
            client_msg_no: "same".into()
        }
    );
    assert_eq!(store.head(), head);
    // no_persist: delivered (an id, its event) but no seq and not in history
    let transient = stored(
        store
            .append_message(
                NewMessage {
                    header: MessageHeader {
                        no_persist: true,
                        ..Default::default()
                    },
                    ..new_message("g", "u", "t1")
                },
                3600,
                Box::new(sent),
            )
            .await
            .unwrap(),
    );
    assert_eq!(transient.message_seq, 0);
    assert_eq!(store.last_seq("g", 2).await.unwrap(), 101);

    // pages: down from the newest, up from a seq, with `more`
    let page = |start, end, limit, pull_mode| SyncQuery {
        channel_key: "g".into(),
        channel_type: 2,
        start_seq: start,
        end_seq: end,
        limit,
        max_bytes: usize::MAX,
        pull_mode,
        now: 0,
    };
    let down = store.sync(page(0, 0, 3, PullMode::Down)).await.unwrap();
    assert_eq!(
        down.messages
            .iter()
            .map(|m| m.message_seq)
            .collect::<Vec<_>>(),
        [99, 100, 101]
    );
    assert!(down.more);
    let up = store.sync(page(98, 0, 10, PullMode::Up)).await.unwrap();
    assert_eq!(
        up.messages
            .iter()
            .map(|m| m.message_seq)
            .collect::<Vec<_>>(),
        [98, 99, 100, 101]
    );
    assert!(!up.more);
    assert_eq!(up.messages[3].payload, br#"{"n":"same"}"#);
    // a byte budget ends a page early with `more`, never below one message
    let weight = chathook_store::stored_bytes(&up.messages[0]);
    let budget = |max_bytes, pull_mode| SyncQuery {
        max_bytes,
        ..page(0, 0, 10, pull_mode)
    };
    let tight = store
        .sync(budget(weight * 2 + weight / 2, PullMode::Down))
        .await
        .unwrap();
    assert_eq!(
        tight
            .messages
            .iter()
            .map(|m| m.message_seq)
            .collect::<Vec<_>>(),
        [100, 101]
    );
    assert!(tight.more);
    let tiny = store.sync(budget(1, PullMode::Up)).await.unwrap();
    assert_eq!(tiny.messages.len(), 1);
    assert!(tiny.more);
    // lookups by seq, id and client_msg_no, each found once (by key: the message whose seq is 7, not
    // the one found by seq 5; which key got which seq depends on the order the 100 appends committed)
    let seventh = format!("c{}", results[6].2);
    let lookup = MessageLookup {
        channel_key: "g".into(),
        channel_type: 2,
        seqs: vec![5, 999],
        message_ids: vec![first.message_id],
        client_msg_nos: vec![seventh.clone(), "same".into()],
        max_bytes: usize::MAX,
    };
    let page = store.find_messages(lookup.clone()).await.unwrap();
    let found = &page.messages;
    assert!(!page.more);
    assert_eq!(found.len(), 3);
    assert_eq!(found[0].message_seq, 5);
    assert_eq!(found[1].client_msg_no, "same");
    assert_eq!(found[2].client_msg_no, seventh);
    assert_eq!(found[2].message_seq, 7);
    // within a byte budget: the first ones found, and `more`
    let budget = chathook_store::stored_bytes(&found[0]) + chathook_store::stored_bytes(&found[1]);
    let page = store
        .find_messages(MessageLookup {
            max_bytes: budget,
            ..lookup
        })
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 2);
    assert!(page.more);
    let reserved = store.reserve_message_id().await.unwrap();
    assert!(reserved > first.message_id && reserved > transient.message_id);

    // CMD messages: no seq, a queue per recipient, positions that pages and acks follow
    let cmd = |n: &str| NewMessage {
        header: MessageHeader {
            sync_once: true,
            ..Default::default()
        },
        cmd_recipients: vec!["bob".into(), "carol".into()],
        note: None,
        ..new_message("g", "alice", n)
    };
    for n in ["k1", "k2"] {
        let m = stored(
            store
                .append_message(cmd(n), 3600, Box::new(sent))
                .await
                .unwrap(),
        );
        assert_eq!(
            m.message_seq, 0,
            "a CMD message takes no seq in channel history"
        );
    }
    assert_eq!(store.last_seq("g", 2).await.unwrap(), 101);
    let bob = store
        .cmd_messages("bob", 0, 10, usize::MAX, 0)
        .await
        .unwrap();
    // a byte budget ends the page early, never below one message
    let one = store.cmd_messages("bob", 0, 10, 1, 0).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].message_seq, bob[0].message_seq);
    assert_eq!(bob.len(), 2);
    assert_eq!(bob[0].client_msg_no, "k1");
    assert!(bob[0].header.sync_once && bob[0].message_seq < bob[1].message_seq);
    assert!(store
        .cmd_messages("alice", 0, 10, usize::MAX, 0)
        .await
        .unwrap()
        .is_empty());
    let rest = store
        .cmd_messages("bob", bob[0].message_seq, 10, usize::MAX, 0)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(
        store
            .ack_cmd_messages("bob", bob[0].message_seq)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .ack_cmd_messages("bob", bob[1].message_seq)
            .await
            .unwrap(),
        1
    );
    assert!(store
        .cmd_messages("bob", 0, 10, usize::MAX, 0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .cmd_messages("carol", 0, 10, usize::MAX, 0)
            .await
            .unwrap()
            .len(),
        2
    );
    store
        .append_message(cmd("k3"), 3600, Box::new(sent))
        .await
        .unwrap();
    let bob_again = store
        .cmd_messages("bob", 0, 10, usize::MAX, 0)
        .await
        .unwrap();
    assert!(
        bob_again[0].message_seq > bob[1].message_seq,
        "positions are never reused"
    );
    // a range deleted: the rest stays, the channel's seqs go on after its newest, even a deleted one
    for n in 1..=5 {
        store
            .append_message(
                new_message("del", "u", &format!("del{n}")),
                3600,
                Box::new(sent),
            )
            .await
            .unwrap();
    }
    assert_eq!(store.delete_range("del", 2, 2, 3).await.unwrap(), 2);
    assert_eq!(
        store.delete_range("del", 2, 4, 5).await.unwrap(),
        2,
        "the end"
    );
    assert_eq!(
        store.delete_range("del", 2, 4, 5).await.unwrap(),
        0,
        "again: nothing"
    );
    let left = store
        .find_messages(MessageLookup {
            channel_key: "del".into(),
            channel_type: 2,
            seqs: (1..=5).collect(),
            message_ids: vec![],
            client_msg_nos: vec![],
            max_bytes: usize::MAX,
        })
        .await
        .unwrap();
    let seqs: Vec<u64> = left.messages.iter().map(|m| m.message_seq).collect();
    assert_eq!(seqs, [1]);
    assert_eq!(
        store.last_seq("del", 2).await.unwrap(),
        5,
        "the newest seq stays"
    );
    let next = stored(
        store
            .append_message(new_message("del", "u", "del6"), 3600, Box::new(sent))
            .await
            .unwrap(),
    );
    assert_eq!(next.message_seq, 6, "no seq handed out twice");

    // one queued message removed by its id (acknowledged live), for its user only
    let k3 = bob_again[0].message_id;
    assert_eq!(store.remove_cmd_message("bob", k3).await.unwrap(), 1);
    assert_eq!(store.remove_cmd_message("bob", k3).await.unwrap(), 0);
    assert!(store
        .cmd_messages("bob", 0, 10, usize::MAX, 0)
        .await
        .unwrap()
        .is_empty());
    let carol: Vec<i64> = store
        .cmd_messages("carol", 0, 10, usize::MAX, 0)
        .await
        .unwrap()
        .iter()
        .map(|m| m.message_id)
        .collect();
    assert!(carol.contains(&k3), "carol's copy stays");
}

/// Conversation lists: the groups a user subscribes to and the person channels with history, each with
/// its newest message and the user's positions (which only move forward).
async fn conversations(store: &(impl ConversationStore + ChannelStore + MessageStore + EventLog)) {
    store
        .upsert_channel(
            ChannelFlags::new("cg", 2),
            SubscriberChange::Add {
                uids: uids(&["alice", "bob"]),
                reset: false,
            },
            Box::new(|_: &ChannelDiff| Vec::new()),
        )
        .await
        .unwrap();
    store
        .append_message(new_message("cg", "bob", "m1"), 3600, Box::new(sent))
        .await
        .unwrap();
    let key = person_channel_key("alice", "carol");
    let to_carol = NewMessage {
        channel_key: key.clone(),
        channel_id: "carol".into(),
        channel_type: 1,
        ..new_message("", "alice", "p1")
    };
    store
        .append_message(to_carol, 3600, Box::new(sent))
        .await
        .unwrap();
    let mut alice = store.conversations("alice").await.unwrap();
    alice.sort_by(|a, b| a.channel_key.cmp(&b.channel_key));
    let group = alice.iter().find(|c| c.channel_key == "cg").unwrap();
    assert_eq!(group.last.as_ref().unwrap().client_msg_no, "m1");
    let person = alice.iter().find(|c| c.channel_key == key).unwrap();
    assert_eq!(
        (person.channel_id.as_str(), person.channel_type),
        ("carol", 1)
    );
    let carol = store.conversations("carol").await.unwrap();
    assert_eq!(carol.len(), 1);
    assert_eq!(carol[0].channel_id, "alice");
    assert!(store.conversations("nobody").await.unwrap().is_empty());
    // positions move forward only
    store
        .mark_conversation("alice", "cg", 2, 1, 0)
        .await
        .unwrap();
    store
        .mark_conversation("alice", "cg", 2, 0, 1)
        .await
        .unwrap();
    let group = store
        .conversations("alice")
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.channel_key == "cg")
        .unwrap();
    assert_eq!((group.read_seq, group.deleted_seq), (1, 1));
    // the newest seq a user sent, after a position
    assert_eq!(
        store.own_last_seq(&key, 1, "alice", 0, 100).await.unwrap(),
        1
    );
    assert_eq!(
        store.own_last_seq(&key, 1, "alice", 1, 100).await.unwrap(),
        0
    );
    assert_eq!(
        store.own_last_seq(&key, 1, "carol", 0, 100).await.unwrap(),
        0
    );
}

fn conn(conn_id: u64, uid: &str) -> ConnRecord {
    ConnRecord {
        conn_id,
        uid: uid.into(),
        device_flag: 0,
        device_level: 0,
        connected_at_ms: 1_700_000_000_000,
    }
}

/// Connections recorded as online, each change with its event; after a crash the ones still recorded
/// are taken back once, with the events made from them.
async fn presence(store: &(impl PresenceStore + EventLog)) {
    let marker = |g: &str| {
        vec![Event::GroupDismissed(chathook_events::GroupRef {
            channel_id: g.into(),
        })]
    };
    let head = store.head();
    store
        .record_online(conn(1, "alice"), marker("on-1"))
        .await
        .unwrap();
    store
        .record_online(conn(2, "bob"), marker("on-2"))
        .await
        .unwrap();
    store.record_offline(1, marker("off-1")).await.unwrap();
    assert_eq!(store.head(), head + 3);
    let recovered = store
        .recover_connections(Box::new(|conns: &Vec<ConnRecord>| {
            conns
                .iter()
                .map(|c| {
                    Event::GroupDismissed(chathook_events::GroupRef {
                        channel_id: c.uid.clone(),
                    })
                })
                .collect()
        }))
        .await
        .unwrap();
    assert_eq!(recovered, [conn(2, "bob")]);
    assert_eq!(store.head(), head + 4);
    let again = store
        .recover_connections(Box::new(|_: &Vec<ConnRecord>| Vec::new()))
        .await
        .unwrap();
    assert!(again.is_empty());
}

/// Retention removes old events only once every holding consumer has acknowledged them; the writer
/// counts its commits.
async fn maintenance(store: &(impl Maintenance + EventLog)) {
    let head = store
        .append(vec![
            Event::GroupDismissed(chathook_events::GroupRef {
                channel_id: "r1".into(),
            }),
            Event::GroupDismissed(chathook_events::GroupRef {
                channel_id: "r2".into(),
            }),
        ])
        .await
        .unwrap();
    // retention 0 removes what is older than now: let this millisecond pass
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .register_consumer("holder", StartAt::Beginning)
        .await
        .unwrap();
    assert_eq!(
        store.prune(3600, 0).await.unwrap().1,
        0,
        "held from the beginning"
    );
    store.ack("holder", head - 1).await.unwrap();
    let (_, removed) = store.prune(3600, 0).await.unwrap();
    assert!(removed >= 1, "everything up to the ack may go");
    let oldest = store.oldest().await.unwrap().map(|(p, _)| p);
    assert_eq!(oldest, Some(head), "the unacknowledged event stays");
    // nor is what retention removed read any more (SQLite also kept the events in its tail)
    let read = store.read_after(0, 10).await.unwrap();
    assert_eq!(read.first().map(|e| e.position), Some(head));
    store.remove_consumer("holder").await.unwrap();
    let metrics = store.writer_metrics();
    assert!(metrics.commits.get() > 0 && metrics.jobs.get() >= metrics.commits.get());
    assert!(!store.describe().is_empty());
}

/// Relay sources as documents; an ingest appends its events with their source, leaves out message ids
/// the source reported within the window (or twice in one batch), and takes a key again once it is
/// older than the window; deleting a source forgets its keys.
async fn relay(store: &(impl RelayStore + EventLog)) {
    store
        .put_relay_source("src_a", "{\"v\":1}".into())
        .await
        .unwrap();
    store
        .put_relay_source("src_a", "{\"v\":2}".into())
        .await
        .unwrap();
    store.put_relay_source("src_b", "{}".into()).await.unwrap();
    assert_eq!(
        store.relay_sources().await.unwrap(),
        [
            ("src_a".to_string(), "{\"v\":2}".to_string()),
            ("src_b".into(), "{}".into())
        ]
    );
    let dismissed = |g: &str| {
        Event::relayed(
            "src_a",
            Event::GroupDismissed(chathook_events::GroupRef {
                channel_id: g.into(),
            }),
        )
    };
    let head = store.head();
    let first = store
        .relay_ingest(
            "src_a",
            vec![
                (dismissed("g1"), Some(1)),
                (dismissed("g2"), Some(2)),
                (dismissed("g1 again"), Some(1)),
                (dismissed("keyless"), None),
            ],
            0,
        )
        .await
        .unwrap();
    assert_eq!(
        first,
        Ingested {
            stored: 3,
            duplicates: 1
        }
    );
    let logged = store.read_after(head, 10).await.unwrap();
    let got: Vec<Event> = logged.into_iter().map(|l| l.event).collect();
    assert_eq!(
        got,
        [dismissed("g1"), dismissed("g2"), dismissed("keyless")]
    );
    assert_eq!(got[0].source(), Some("src_a"));
    // the same batch re-sent with one more message: only the new one is stored
    let again = store
        .relay_ingest(
            "src_a",
            vec![(dismissed("g2"), Some(2)), (dismissed("g3"), Some(3))],
            0,
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        Ingested {
            stored: 1,
            duplicates: 1
        }
    );
    // keys are per source
    let other = store
        .relay_ingest("src_b", vec![(dismissed("g2"), Some(2))], 0)
        .await
        .unwrap();
    assert_eq!(other.stored, 1);
    // a key seen before the window is new again
    let far_future = i64::MAX / 2;
    let later = store
        .relay_ingest("src_a", vec![(dismissed("g2"), Some(2))], far_future)
        .await
        .unwrap();
    assert_eq!(
        later,
        Ingested {
            stored: 1,
            duplicates: 0
        }
    );
    assert!(store.prune_relay_keys(far_future).await.unwrap() >= 3);
    let pruned = store
        .relay_ingest("src_b", vec![(dismissed("g2"), Some(2))], 0)
        .await
        .unwrap();
    assert_eq!(pruned.stored, 1, "a pruned key is new again");
    assert!(store.delete_relay_source("src_b").await.unwrap());
    assert!(!store.delete_relay_source("src_b").await.unwrap());
    let after_delete = store
        .relay_ingest("src_b", vec![(dismissed("g2"), Some(2))], 0)
        .await
        .unwrap();
    assert_eq!(after_delete.stored, 1, "a deleted source's keys are gone");
}

/// A consumer's cursor moves back and forth on request, and a time names the position before the
/// first event appended at or after it.
async fn seeking(store: &impl EventLog) {
    let dismissed = |g: &str| {
        Event::GroupDismissed(chathook_events::GroupRef {
            channel_id: g.into(),
        })
    };
    let before = store.append(vec![dismissed("early")]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let head = store
        .append(vec![dismissed("late-1"), dismissed("late-2")])
        .await
        .unwrap();
    assert_eq!(
        store.position_before(now).await.unwrap(),
        before,
        "the late events follow"
    );
    assert_eq!(
        store.position_before(now + 60_000).await.unwrap(),
        head,
        "nothing that late"
    );
    let oldest = store.oldest().await.unwrap().unwrap().0;
    assert_eq!(
        store.position_before(0).await.unwrap(),
        oldest - 1,
        "everything"
    );
    store
        .register_consumer("seeker", StartAt::Head)
        .await
        .unwrap();
    store.seek_consumer("seeker", before).await.unwrap();
    assert_eq!(
        store.consumer_position("seeker").await.unwrap(),
        before,
        "back"
    );
    let events = store.read_after(before, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    store.seek_consumer("seeker", head).await.unwrap();
    assert_eq!(
        store.consumer_position("seeker").await.unwrap(),
        head,
        "forward"
    );
    assert!(store.seek_consumer("nobody", 1).await.is_err());
    store.remove_consumer("seeker").await.unwrap();
}

#[tokio::test]
async fn every_behaviour_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(SqliteOptions::new(dir.path())).unwrap());
    users(&*store).await;
    channels(&*store).await;
    webhook_state(&*store).await;
    attempt_log(&*store).await;
    conversations(&*store).await;
    presence(&*store).await;
    relay(&*store).await;
    seeking(&*store).await;
    messages(store.clone()).await;
    maintenance(&*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_behaviour_in_postgres() {
    let pg = Postgres::start().unwrap();
    let store = PgStore::connect(&pg.database("users").unwrap(), 4, 1)
        .await
        .unwrap();
    users(&store).await;
    channels(&store).await;
    webhook_state(&store).await;
    attempt_log(&store).await;
    conversations(&store).await;
    presence(&store).await;
    relay(&store).await;
    seeking(&store).await;
    let store = Arc::new(store);
    messages(store.clone()).await;
    maintenance(&*store).await;
}
