//! The PostgreSQL store against a real PostgreSQL started for the test (`chathook-testkit`).

use std::time::Duration;

use chathook_events::{Event, EventLog, EventLogError, GroupRef, LoggedEvent, StartAt};
use chathook_store::postgres::LATEST_VERSION;
use chathook_store::PgStore;
use chathook_testkit::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_the_schema_once() {
    let pg = Postgres::start().unwrap();
    let url = pg.database("together").unwrap();
    // four nodes start at once against an empty database
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url, 2, 1).await })
        })
        .collect();
    let mut stores = Vec::new();
    for s in starts {
        stores.push(s.await.unwrap().unwrap());
    }
    for store in &stores {
        assert_eq!(store.schema_version().await.unwrap(), LATEST_VERSION);
    }
    // each step recorded once, and a later start changes nothing
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(
        count(&client).await,
        (LATEST_VERSION as i64, LATEST_VERSION as i64)
    );
    PgStore::connect(&url, 1, 1).await.unwrap();
    assert_eq!(
        count(&client).await,
        (LATEST_VERSION as i64, LATEST_VERSION as i64)
    );
    // the steps' tables are there
    for table in [
        "tokens",
        "profiles",
        "system_uids",
        "event_log",
        "consumers",
    ] {
        let row = client
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .await
            .unwrap();
        assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(table));
    }
}

/// (steps recorded, distinct versions recorded).
async fn count(client: &tokio_postgres::Client) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT COUNT(*), COUNT(DISTINCT version) FROM chathook_migrations",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_bad_url_or_an_absent_server_is_a_clear_error() {
    let e = PgStore::connect("postgres://[not a url", 1, 1)
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("bad PostgreSQL URL"), "{e}");
    // nothing listens on port 9 of loopback
    let e = PgStore::connect("host=127.0.0.1 port=9 user=postgres", 1, 1)
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("PostgreSQL connection"), "{e}");
}

fn dismissed(group: &str) -> Event {
    Event::GroupDismissed(GroupRef {
        channel_id: group.into(),
    })
}

/// A message from `from` to the group `g`.
fn to_group_g(client_msg_no: &str, from: &str) -> chathook_store::NewMessage {
    chathook_store::NewMessage {
        channel_key: "g".into(),
        channel_id: "g".into(),
        channel_type: 2,
        client_msg_no: client_msg_no.into(),
        from_uid: from.into(),
        header: chathook_events::MessageHeader::default(),
        setting: 0,
        expire: 0,
        payload: b"{}".to_vec(),
        cmd_recipients: Vec::new(),
        note: None,
    }
}

fn group_of(e: &LoggedEvent) -> String {
    match &e.event {
        Event::GroupDismissed(g) => g.channel_id.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_append_in_one_gap_free_order_and_each_wakes_for_the_other() {
    let pg = Postgres::start().unwrap();
    let url = pg.database("log").unwrap();
    let a = PgStore::connect(&url, 4, 1).await.unwrap();
    let b = PgStore::connect(&url, 4, 1).await.unwrap();
    assert_eq!((a.head(), b.head()), (0, 0));
    assert_eq!(
        a.append(Vec::new()).await.unwrap(),
        0,
        "an empty append is the head"
    );
    // node B waits for node A's first append
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { b.wait_beyond(0).await })
    };
    assert_eq!(a.append(vec![dismissed("first")]).await.unwrap(), 1);
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("node B learns of node A's append")
        .unwrap();
    // concurrent appends from both nodes, several events each
    let mut tasks = Vec::new();
    for n in 0..40 {
        let node = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let events = (0..3).map(|i| dismissed(&format!("{n}-{i}"))).collect();
            node.append(events).await.unwrap()
        }));
    }
    let mut lasts = Vec::new();
    for t in tasks {
        lasts.push(t.await.unwrap());
    }
    lasts.sort_unstable();
    lasts.dedup();
    assert_eq!(lasts.len(), 40, "each append has its own last position");
    let all = a.read_after(0, 1000).await.unwrap();
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        (1..=121).collect::<Vec<u64>>(),
        "gap-free, in order"
    );
    // each append's events are together, in its order
    for n in 0..40 {
        let mine: Vec<&LoggedEvent> = all
            .iter()
            .filter(|e| group_of(e).starts_with(&format!("{n}-")))
            .collect();
        assert_eq!(mine.len(), 3);
        assert!(mine.windows(2).all(|w| w[1].position == w[0].position + 1));
        assert_eq!(group_of(mine[0]), format!("{n}-0"));
    }
    assert_eq!(group_of(&all[0]), "first");
    // pages
    let page = b.read_after(100, 5).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        [101, 102, 103, 104, 105]
    );
    b.wait_beyond(120).await;
    assert_eq!(b.head(), 121);
    assert_eq!(a.oldest().await.unwrap().map(|(p, _)| p), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_start_where_asked_ack_forward_only_and_hold_the_log() {
    let pg = Postgres::start().unwrap();
    let url = pg.database("consumers").unwrap();
    let store = PgStore::connect(&url, 4, 1).await.unwrap();
    store
        .append(vec![dismissed("a"), dismissed("b")])
        .await
        .unwrap();
    assert_eq!(
        store
            .register_consumer("from-head", StartAt::Head)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .register_consumer("from-start", StartAt::Beginning)
            .await
            .unwrap(),
        0
    );
    // registering again keeps the cursor
    store.ack("from-start", 1).await.unwrap();
    assert_eq!(
        store
            .register_consumer("from-start", StartAt::Head)
            .await
            .unwrap(),
        1
    );
    // an ack never moves back
    store.ack("from-start", 0).await.unwrap();
    assert_eq!(store.consumer_position("from-start").await.unwrap(), 1);
    assert_eq!(store.held_from().await.unwrap(), Some(1));
    store.set_holding("from-start", false).await.unwrap();
    assert_eq!(store.held_from().await.unwrap(), Some(2));
    store.remove_consumer("from-head").await.unwrap();
    assert_eq!(store.held_from().await.unwrap(), None);
    for e in [
        store.ack("nobody", 1).await.unwrap_err(),
        store.consumer_position("nobody").await.unwrap_err(),
        store.set_holding("nobody", true).await.unwrap_err(),
    ] {
        assert!(
            matches!(e, EventLogError::UnknownConsumer(ref n) if n == "nobody"),
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_of_one_channel_on_two_nodes_get_gap_free_seqs_and_distinct_ids() {
    use chathook_events::Message;
    use chathook_store::{AppendOutcome, MessageStore};
    let pg = Postgres::start().unwrap();
    let url = pg.database("seqs").unwrap();
    let a = PgStore::connect(&url, 4, 1).await.unwrap();
    let b = PgStore::connect(&url, 4, 2).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let message = to_group_g(&format!("c{i}"), &format!("u{i}"));
            let sent = |m: &Message| vec![Event::MessageSent(m.clone())];
            match node
                .append_message(message, 3600, Box::new(sent))
                .await
                .unwrap()
            {
                AppendOutcome::Stored(m) => (m.message_seq, m.message_id),
                other => panic!("{other:?}"),
            }
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let mut seqs: Vec<u64> = results.iter().map(|r| r.0).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=60).collect::<Vec<u64>>());
    let mut ids: Vec<i64> = results.iter().map(|r| r.1).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 60, "the node id keeps ids apart");
    // every message's event is in the shared log once
    assert_eq!(a.read_after(0, 1000).await.unwrap().len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_recovers_only_its_own_connections() {
    use chathook_store::{ConnRecord, PresenceStore};
    let pg = Postgres::start().unwrap();
    let url = pg.database("presence").unwrap();
    let a = PgStore::connect(&url, 2, 1).await.unwrap();
    let b = PgStore::connect(&url, 2, 2).await.unwrap();
    let conn = |conn_id, uid: &str| ConnRecord {
        conn_id,
        uid: uid.into(),
        device_flag: 0,
        device_level: 0,
        connected_at_ms: 0,
    };
    // both nodes number their connections from 1
    a.record_online(conn(1, "alice"), Vec::new()).await.unwrap();
    b.record_online(conn(1, "bob"), Vec::new()).await.unwrap();
    let none = |_: &Vec<ConnRecord>| Vec::new();
    assert_eq!(
        b.recover_connections(Box::new(none)).await.unwrap(),
        [conn(1, "bob")]
    );
    assert_eq!(
        a.recover_connections(Box::new(none)).await.unwrap(),
        [conn(1, "alice")]
    );
}

fn record(conn_id: u64, uid: &str, device_level: u8) -> chathook_store::ConnRecord {
    chathook_store::ConnRecord {
        conn_id,
        uid: uid.into(),
        device_flag: 1,
        device_level,
        connected_at_ms: 7,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_observed_in_order_and_other_nodes_connections_read_with_the_head() {
    use chathook_store::{ClusterStore, Committed, PresenceStore};
    use std::sync::{Arc, Mutex};
    let pg = Postgres::start().unwrap();
    let url = pg.database("observe").unwrap();
    let a = PgStore::connect(&url, 4, 1).await.unwrap();
    let b = PgStore::connect(&url, 4, 2).await.unwrap();
    let seen: Arc<Mutex<Vec<(u64, usize)>>> = Arc::default();
    let sink = seen.clone();
    a.observe_commits(Box::new(move |c: &Committed| {
        sink.lock()
            .unwrap()
            .push((c.first_position, c.events.len()));
    }));
    b.append(vec![dismissed("b1")]).await.unwrap();
    a.append(vec![dismissed("a1"), dismissed("a2")])
        .await
        .unwrap();
    a.append(Vec::new()).await.unwrap();
    a.append(vec![dismissed("a3")]).await.unwrap();
    // node A sees its own commits (not B's, nor the empty one), each with its first position
    assert_eq!(*seen.lock().unwrap(), [(2, 2), (4, 1)]);

    a.record_online(record(1, "alice", 1), vec![dismissed("on")])
        .await
        .unwrap();
    b.record_online(record(1, "bob", 0), Vec::new())
        .await
        .unwrap();
    b.record_online(record(2, "bob", 1), Vec::new())
        .await
        .unwrap();
    let (head, conns) = a.cluster_presence().await.unwrap();
    assert_eq!(head, 5);
    assert_eq!(conns, [(2, record(1, "bob", 0)), (2, record(2, "bob", 1))]);
    let (_, conns) = b.cluster_presence().await.unwrap();
    assert_eq!(conns, [(1, record(1, "alice", 1))], "device level kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_messages_note_reaches_the_observer_with_its_id_and_a_duplicates_does_not() {
    use chathook_events::Message;
    use chathook_store::{
        AppendOutcome, ClusterStore, CommitNote, Committed, MessageStore, NewMessage,
    };
    use std::sync::{Arc, Mutex};
    let pg = Postgres::start().unwrap();
    let url = pg.database("notes").unwrap();
    let a = PgStore::connect(&url, 4, 1).await.unwrap();
    let seen: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    let sink = seen.clone();
    a.observe_commits(Box::new(move |c: &Committed| {
        let mut seen = sink.lock().unwrap();
        for (id, note) in &c.notes {
            seen.push((*id, note.get::<String>().cloned().unwrap_or_default()));
        }
    }));
    let message = |key: &str, note: Option<&str>| NewMessage {
        note: note.map(|n| CommitNote(Arc::new(n.to_string()))),
        ..to_group_g(key, "u")
    };
    let sent = |m: &Message| vec![Event::MessageSent(m.clone())];
    let mut ids = Vec::new();
    for (key, note) in [("k1", Some("first")), ("k2", None), ("k1", Some("again"))] {
        let outcome = a
            .append_message(message(key, note), 3600, Box::new(sent))
            .await
            .unwrap();
        ids.push(match outcome {
            AppendOutcome::Stored(m) => m.message_id,
            AppendOutcome::Duplicate { message_id, .. } => message_id,
        });
    }
    // the first message's note, under its id; none for the message without one, none for the
    // duplicate (it wrote nothing)
    assert_eq!(ids[0], ids[2]);
    assert_eq!(*seen.lock().unwrap(), [(ids[0], "first".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_nodes_latest_figures_are_read_while_fresh_and_gone_when_it_leaves() {
    use chathook_store::ClusterStore;
    let pg = Postgres::start().unwrap();
    let url = pg.database("figures").unwrap();
    let a = PgStore::connect(&url, 4, 1).await.unwrap();
    let b = PgStore::connect(&url, 4, 2).await.unwrap();
    a.publish_figures(r#"{"connections":1}"#).await.unwrap();
    b.publish_figures(r#"{"connections":2}"#).await.unwrap();
    a.publish_figures(r#"{"connections":3}"#).await.unwrap();
    let read = a.node_figures(60_000).await.unwrap();
    let docs: Vec<(u16, &str)> = read.iter().map(|(n, _, d)| (*n, d.as_str())).collect();
    assert_eq!(
        docs,
        [(1, r#"{"connections":3}"#), (2, r#"{"connections":2}"#)],
        "the newest document per node"
    );
    assert!(read.iter().all(|(_, age, _)| (0..60_000).contains(age)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.publish_figures("{}").await.unwrap();
    let fresh: Vec<u16> = b
        .node_figures(200)
        .await
        .unwrap()
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(
        fresh,
        [1],
        "a node silent for longer than the window is left out"
    );
    a.leave().await.unwrap();
    let left: Vec<u16> = b
        .node_figures(60_000)
        .await
        .unwrap()
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(left, [2], "a node that left has no figures");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_nodes_connections_are_taken_over_once() {
    use chathook_store::{ClusterStore, ConnRecord, PresenceStore};
    let pg = Postgres::start().unwrap();
    let url = pg.database("silent").unwrap();
    let a = PgStore::connect(&url, 4, 1).await.unwrap();
    let b = PgStore::connect(&url, 4, 2).await.unwrap();
    let c = PgStore::connect(&url, 4, 3).await.unwrap();
    for node in [&a, &b, &c] {
        node.heartbeat().await.unwrap();
    }
    c.record_online(record(1, "carol", 0), Vec::new())
        .await
        .unwrap();
    c.record_online(record(2, "carl", 0), Vec::new())
        .await
        .unwrap();
    // within the timeout nobody is silent; a node never reports itself
    assert!(a.silent_nodes(60_000).await.unwrap().is_empty());
    assert_eq!(a.live_nodes(60_000).await.unwrap(), [1, 2, 3]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.heartbeat().await.unwrap();
    b.heartbeat().await.unwrap();
    assert_eq!(a.silent_nodes(200).await.unwrap(), [3]);
    assert_eq!(a.live_nodes(200).await.unwrap(), [1, 2]);
    assert_eq!(
        c.live_nodes(200).await.unwrap(),
        [1, 2, 3],
        "a node counts itself"
    );
    assert!(c.silent_nodes(200).await.unwrap().is_empty());
    b.leave().await.unwrap();
    assert_eq!(
        a.live_nodes(60_000).await.unwrap(),
        [1, 3],
        "a node that left is not live"
    );
    // a node that beat again is not taken over
    let lost = |conns: &Vec<ConnRecord>| conns.iter().map(|c| dismissed(&c.uid)).collect();
    assert!(a
        .take_over_connections(2, 200, Box::new(lost))
        .await
        .unwrap()
        .is_empty());
    // A and B take over C at once: one of them gets its connections, with their events, once
    let (ta, tb) = tokio::join!(
        a.take_over_connections(3, 200, Box::new(lost)),
        b.take_over_connections(3, 200, Box::new(lost))
    );
    let mut taken = ta.unwrap();
    taken.extend(tb.unwrap());
    assert_eq!(taken, [record(1, "carol", 0), record(2, "carl", 0)]);
    let events = a.read_after(0, 10).await.unwrap();
    assert_eq!(events.len(), 2, "the offline events are appended once");
    assert!(a.silent_nodes(200).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_held_by_one_node_until_it_expires_or_is_released() {
    use chathook_store::ClusterStore;
    let pg = Postgres::start().unwrap();
    let url = pg.database("leases").unwrap();
    let a = PgStore::connect(&url, 2, 1).await.unwrap();
    let b = PgStore::connect(&url, 2, 2).await.unwrap();
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        a.acquire_leases(names(&["x", "y"]), 400)
            .await
            .unwrap()
            .len(),
        2
    );
    // B gets only the free one; A renews its own
    assert_eq!(
        b.acquire_leases(names(&["x", "y", "z"]), 400)
            .await
            .unwrap(),
        ["z"]
    );
    let mut renewed = a
        .acquire_leases(names(&["x", "y", "z"]), 400)
        .await
        .unwrap();
    renewed.sort();
    assert_eq!(renewed, ["x", "y"]);
    // A stops renewing x: it expires and B takes it; A released y: B takes it at once
    a.release_leases(names(&["y"])).await.unwrap();
    assert_eq!(b.acquire_leases(names(&["y"]), 400).await.unwrap(), ["y"]);
    assert!(b
        .acquire_leases(names(&["x"]), 400)
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.acquire_leases(names(&["x"]), 400).await.unwrap(), ["x"]);
    assert!(a
        .acquire_leases(names(&["x"]), 400)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_takes_at_most_max_batch_writes() {
    use chathook_store::{Maintenance, PgOptions};
    let pg = Postgres::start().unwrap();
    let url = pg.database("batch").unwrap();
    let store = PgStore::connect_with(
        &url,
        PgOptions {
            max_batch: 3,
            queue_capacity: 1,
            ..PgOptions::new(2, 1)
        },
    )
    .await
    .unwrap();
    let metrics = store.writer_metrics();
    let before = (metrics.commits.get(), metrics.jobs.get());
    let writes: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.append(vec![dismissed(&format!("w{i}"))]).await })
        })
        .collect();
    for w in writes {
        w.await.unwrap().unwrap();
    }
    let commits = metrics.commits.get() - before.0;
    assert_eq!(metrics.jobs.get() - before.1, 12);
    assert!(
        commits >= 4,
        "12 writes, at most 3 a commit: {commits} commits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stored_as_jsonb_before_step_9_stay_readable_after_it() {
    let pg = Postgres::start().unwrap();
    let url = pg.database("step9").unwrap();
    let store = PgStore::connect(&url, 2, 1).await.unwrap();
    store.append(vec![dismissed("before")]).await.unwrap();
    drop(store);
    // the database as schema version 8 left it
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "ALTER TABLE event_log ALTER COLUMN body TYPE JSONB USING body::JSONB;
             DROP TABLE node_figures;
             DROP TABLE relay_sources;
             DROP TABLE relay_keys;
             ALTER TABLE webhook_pending DROP COLUMN source;
             ALTER TABLE webhook_attempts DROP COLUMN source;
             DELETE FROM chathook_migrations WHERE version >= 9;",
        )
        .await
        .unwrap();
    let store = PgStore::connect(&url, 2, 1).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), LATEST_VERSION);
    store.append(vec![dismissed("after")]).await.unwrap();
    let events = store.read_after(0, 10).await.unwrap();
    assert_eq!(
        events.into_iter().map(|e| e.event).collect::<Vec<_>>(),
        [dismissed("before"), dismissed("after")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_nodes_overlapping_groups_keep_positions_seqs_and_observations_in_commit_order() {
    use chathook_events::Message;
    use chathook_store::{AppendOutcome, ClusterStore, Committed, MessageStore, PgOptions};
    use std::sync::{Arc, Mutex};
    let pg = Postgres::start().unwrap();
    let url = pg.database("overlap").unwrap();
    // two writes a group: many small groups, each starting while the one before commits
    let store = PgStore::connect_with(
        &url,
        PgOptions {
            max_batch: 2,
            ..PgOptions::new(4, 1)
        },
    )
    .await
    .unwrap();
    let seen: Arc<Mutex<Vec<(u64, usize)>>> = Arc::default();
    let sink = seen.clone();
    store.observe_commits(Box::new(move |c: &Committed| {
        sink.lock()
            .unwrap()
            .push((c.first_position, c.events.len()));
    }));
    // every fifth message repeats one key: one of them is stored, the others are duplicates
    let message = |i: usize| {
        let key = if i.is_multiple_of(5) {
            "again".to_string()
        } else {
            format!("c{i}")
        };
        to_group_g(&key, "u")
    };
    let mut sends = Vec::new();
    let mut appends = Vec::new();
    for i in 0..60usize {
        let store = store.clone();
        if i.is_multiple_of(3) {
            appends.push(tokio::spawn(async move {
                let events = vec![dismissed(&format!("{i}-0")), dismissed(&format!("{i}-1"))];
                (i, store.append(events).await.unwrap())
            }));
        } else {
            let sent = |m: &Message| vec![Event::MessageSent(m.clone())];
            let message = message(i);
            sends.push(tokio::spawn(async move {
                store
                    .append_message(message, 3600, Box::new(sent))
                    .await
                    .unwrap()
            }));
        }
    }
    let (mut seqs, mut again) = (Vec::new(), Vec::new());
    for send in sends {
        match send.await.unwrap() {
            AppendOutcome::Stored(m) if m.client_msg_no == "again" => {
                seqs.push(m.message_seq);
                again.push((m.message_id, m.message_seq));
            }
            AppendOutcome::Stored(m) => seqs.push(m.message_seq),
            AppendOutcome::Duplicate {
                message_id,
                message_seq,
                ..
            } => again.push((message_id, message_seq)),
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=33).collect::<Vec<u64>>(), "gap-free seqs");
    again.dedup();
    assert_eq!(
        again.len(),
        1,
        "duplicates answer with the first: {again:?}"
    );

    let log = store.read_after(0, 1000).await.unwrap();
    let positions: Vec<u64> = log.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=73).collect::<Vec<u64>>(), "gap-free log");
    for append in appends {
        let (i, last) = append.await.unwrap();
        let at = |p: u64| group_of(&log[p as usize - 1]);
        assert_eq!(
            (at(last - 1), at(last)),
            (format!("{i}-0"), format!("{i}-1")),
            "an append's answer is its last event's position"
        );
    }
    // every commit observed once, in position order
    let seen = seen.lock().unwrap().clone();
    let mut next = 1;
    for (first, len) in &seen {
        assert_eq!(*first, next, "observed in order: {seen:?}");
        next += *len as u64;
    }
    assert_eq!(next, 74);
}
