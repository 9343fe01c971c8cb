//! The embedded store on its own: group commits, sequence numbers, idempotency, reopen.

use std::sync::Arc;

use chathook_events::{Event, EventLog, Message, MessageHeader};
use chathook_store::{
    person_channel_key, AppendOutcome, CmdQueueStore, ConversationStore, Maintenance, MessageStore,
    NewMessage, SqliteOptions, SqliteStore,
};

fn new_message(from: &str, client_msg_no: &str) -> NewMessage {
    NewMessage {
        channel_key: "g".into(),
        channel_id: "g".into(),
        channel_type: 2,
        client_msg_no: client_msg_no.into(),
        from_uid: from.into(),
        header: MessageHeader::default(),
        setting: 0,
        expire: 0,
        payload: b"{}".to_vec(),
        cmd_recipients: Vec::new(),
        note: None,
    }
}

fn sent(m: &Message) -> Vec<Event> {
    vec![Event::MessageSent(m.clone())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits_and_get_gap_free_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(SqliteOptions::new(dir.path())).unwrap());
    let n = 400;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                match store
                    .append_message(new_message("u", &format!("c{i}")), 3600, Box::new(sent))
                    .await
                    .unwrap()
                {
                    AppendOutcome::Stored(m) => (m.message_seq, m.message_id),
                    AppendOutcome::Duplicate { .. } => panic!("not a duplicate"),
                }
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results.sort();
    let seqs: Vec<u64> = results.iter().map(|r| r.0).collect();
    assert_eq!(seqs, (1..=n as u64).collect::<Vec<_>>());
    assert!(
        results.windows(2).all(|w| w[0].1 < w[1].1),
        "ids increase with seqs"
    );
    let commits = store.metrics().commits.get();
    assert!(
        commits < n as u64 / 2,
        "{commits} commits for {n} writes: not grouped"
    );
    assert_eq!(store.read_after(0, 10_000).await.unwrap().len(), n);
}

#[tokio::test]
async fn duplicates_write_nothing_and_everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    let first = store
        .append_message(new_message("u", "same"), 3600, Box::new(sent))
        .await
        .unwrap();
    let head = store.head();
    let again = store
        .append_message(new_message("u", "same"), 3600, Box::new(sent))
        .await
        .unwrap();
    let AppendOutcome::Stored(m) = first else {
        panic!()
    };
    assert_eq!(
        again,
        AppendOutcome::Duplicate {
            message_id: m.message_id,
            message_seq: m.message_seq,
            client_msg_no: "same".into()
        }
    );
    assert_eq!(store.head(), head);
    drop(store);
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    assert_eq!(store.head(), head);
    let next = store
        .append_message(new_message("u", "other"), 3600, Box::new(sent))
        .await
        .unwrap();
    let AppendOutcome::Stored(n) = next else {
        panic!()
    };
    assert_eq!(n.message_seq, 2);
    assert!(n.message_id > m.message_id);
}

#[tokio::test]
async fn cmd_queue_positions_are_never_reused_across_a_reopen() {
    // (the queue's behaviour itself is in tests/behaviour.rs, for every store)
    let dir = tempfile::tempdir().unwrap();
    let cmd = |n: &str| NewMessage {
        header: MessageHeader {
            sync_once: true,
            ..Default::default()
        },
        cmd_recipients: vec!["bob".into()],
        note: None,
        ..new_message("alice", n)
    };
    let last = {
        let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
        for n in ["c1", "c2"] {
            store
                .append_message(cmd(n), 3600, Box::new(sent))
                .await
                .unwrap();
        }
        let bob = store
            .cmd_messages("bob", 0, 10, usize::MAX, 0)
            .await
            .unwrap();
        assert_eq!(
            store
                .ack_cmd_messages("bob", bob[1].message_seq)
                .await
                .unwrap(),
            2
        );
        bob[1].message_seq
    };
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    store
        .append_message(cmd("c3"), 3600, Box::new(sent))
        .await
        .unwrap();
    let bob = store
        .cmd_messages("bob", 0, 10, usize::MAX, 0)
        .await
        .unwrap();
    assert_eq!(bob.len(), 1);
    assert!(
        bob[0].message_seq > last,
        "an emptied queue does not reuse positions"
    );
}

#[tokio::test]
async fn person_channels_stored_before_conversations_existed_are_indexed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
        let m = NewMessage {
            channel_key: person_channel_key("alice", "bob"),
            channel_id: "bob".into(),
            channel_type: 1,
            ..new_message("alice", "p1")
        };
        store.append_message(m, 3600, Box::new(sent)).await.unwrap();
    }
    // make the file look like one written by the previous schema version
    let conn = rusqlite::Connection::open(dir.path().join("chathook.db")).unwrap();
    conn.execute_batch("DELETE FROM person_channels; PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    for (uid, peer) in [("alice", "bob"), ("bob", "alice")] {
        let list = store.conversations(uid).await.unwrap();
        assert_eq!(list.len(), 1, "{uid}");
        assert_eq!(list[0].channel_id, peer);
        assert_eq!(list[0].last.as_ref().map(|m| m.message_seq), Some(1));
    }
}

#[tokio::test]
async fn dedup_keys_of_an_older_store_still_return_their_first_message() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(SqliteOptions::new(dir.path())).unwrap());
    // the keys as version 5 kept them (one table by sender and key, with a created_at index)
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let conn = rusqlite::Connection::open(dir.path().join("chathook.db")).unwrap();
    conn.execute_batch(&format!(
        "DROP TABLE client_msg_keys;
         CREATE TABLE client_msgs (
           from_uid TEXT NOT NULL, client_msg_no TEXT NOT NULL, created_at INTEGER NOT NULL,
           message_id INTEGER NOT NULL, message_seq INTEGER NOT NULL,
           PRIMARY KEY (from_uid, client_msg_no)) WITHOUT ROWID;
         CREATE INDEX client_msgs_created ON client_msgs(created_at);
         INSERT INTO client_msgs VALUES ('u', 'old', {now}, 4242, 9);
         PRAGMA user_version = 5;"
    ))
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    // with the default window (a day), the key sent before the upgrade is found
    let again = store
        .append_message(new_message("u", "old"), 86_400, Box::new(sent))
        .await
        .unwrap();
    assert_eq!(
        again,
        AppendOutcome::Duplicate {
            message_id: 4242,
            message_seq: 9,
            client_msg_no: "old".into()
        }
    );
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("chathook.db")).unwrap();
    let old_table: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'client_msgs'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old_table, 0, "the old table is gone");
}

#[tokio::test]
async fn committed_pages_reach_the_database_file_while_the_store_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    for i in 0..20 {
        store
            .append_message(new_message("u", &format!("c{i}")), 3600, Box::new(sent))
            .await
            .unwrap();
    }
    // the checkpointer copies them out of the write-ahead log: the database file alone holds them
    let copy = tempfile::tempdir().unwrap();
    let mut stored = 0;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        std::fs::copy(dir.path().join("chathook.db"), copy.path().join("alone.db")).unwrap();
        let conn = rusqlite::Connection::open(copy.path().join("alone.db")).unwrap();
        stored = conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get::<_, i64>(0))
            .unwrap_or(0);
        if stored == 20 {
            break;
        }
    }
    assert_eq!(stored, 20);
}

#[tokio::test]
async fn consumers_of_an_older_store_gain_the_holding_switch() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(SqliteOptions::new(dir.path())).unwrap());
    // the consumers table as version 2 wrote it, with a cursor in it
    let conn = rusqlite::Connection::open(dir.path().join("chathook.db")).unwrap();
    conn.execute_batch(
        "DROP TABLE consumers;
         CREATE TABLE consumers (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
         INSERT INTO consumers(name, position) VALUES ('old', 0);
         PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    store
        .append(vec![Event::GroupDismissed(chathook_events::GroupRef {
            channel_id: "g".into(),
        })])
        .await
        .unwrap();
    assert_eq!(
        store.held_from().await.unwrap(),
        Some(0),
        "it holds by default"
    );
    store.set_holding("old", false).await.unwrap();
    assert_eq!(store.held_from().await.unwrap(), None);
    // retention removes events older than now: let the event's millisecond pass
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (pruned_keys, pruned_events) = store.prune(3600, 0).await.unwrap();
    assert_eq!(
        (pruned_keys, pruned_events),
        (0, 1),
        "nobody holds the log any more"
    );
    assert!(store.set_holding("nobody", false).await.is_err());
}

#[tokio::test]
async fn message_events_refer_to_history_and_read_back_whole() {
    use chathook_events::{ClientInfo, MessageHeader, OfflineMessage};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    let sender = std::sync::Arc::new(ClientInfo {
        ip: "198.51.100.4".into(),
        platform: "Android".into(),
    });
    let with_offline = move |m: &Message| {
        // the events carry the sender's client, which history does not keep
        let m = Message {
            sender: sender.clone(),
            ..m.clone()
        };
        vec![
            Event::MessageSent(m.clone()),
            Event::MessageOffline(OfflineMessage {
                message: m.clone(),
                to_uids: vec!["bob".into()],
                source_id: 7,
            }),
        ]
    };
    let person = NewMessage {
        channel_key: person_channel_key("alice", "bob"),
        channel_id: "bob".into(),
        channel_type: 1,
        payload: vec![0, 255, 7],
        ..new_message("alice", "p1")
    };
    let AppendOutcome::Stored(stored) = store
        .append_message(person, 3600, Box::new(with_offline))
        .await
        .unwrap()
    else {
        panic!("stored")
    };
    // a message that is not in history is kept whole in the event
    let typing = NewMessage {
        header: MessageHeader {
            no_persist: true,
            ..Default::default()
        },
        ..new_message("alice", "t1")
    };
    store
        .append_message(typing, 3600, Box::new(sent))
        .await
        .unwrap();
    let events = store.read_after(0, 10).await.unwrap();
    assert_eq!(events.len(), 3);
    let stored = Message {
        sender: std::sync::Arc::new(ClientInfo {
            ip: "198.51.100.4".into(),
            platform: "Android".into(),
        }),
        ..stored
    };
    assert_eq!(events[0].event, Event::MessageSent(stored.clone()));
    let Event::MessageOffline(o) = &events[1].event else {
        panic!("{:?}", events[1].event)
    };
    assert_eq!(
        (&o.message, &o.to_uids, o.source_id),
        (&stored, &vec!["bob".to_string()], 7)
    );
    let Event::MessageSent(t) = &events[2].event else {
        panic!()
    };
    assert!(t.header.no_persist && t.message_seq == 0);
    // those came from the log's tail in memory; reopened (an empty tail), the same events are read
    // back from the database
    drop(store);
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    assert_eq!(store.read_after(0, 10).await.unwrap(), events);
    // stored by reference: the row is small whatever the payload
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("chathook.db")).unwrap();
    let first: String = conn
        .query_row(
            "SELECT body FROM events ORDER BY position LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        first.starts_with("{\"ref\":") && !first.contains("payload"),
        "{first}"
    );
}

#[tokio::test]
async fn deleting_a_channels_newest_messages_frees_no_seq_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    for n in 1..=3 {
        store
            .append_message(new_message("u", &format!("m{n}")), 3600, Box::new(sent))
            .await
            .unwrap();
    }
    assert_eq!(store.delete_range("g", 2, 2, 3).await.unwrap(), 2);
    drop(store);
    // a new process knows the channel's seqs only from the file: the newest, deleted, still counts
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    assert_eq!(store.last_seq("g", 2).await.unwrap(), 3);
    let next = store
        .append_message(new_message("u", "m4"), 3600, Box::new(sent))
        .await
        .unwrap();
    let AppendOutcome::Stored(m) = next else {
        panic!("stored")
    };
    assert_eq!(m.message_seq, 4);
}
