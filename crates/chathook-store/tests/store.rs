//! The embedded store on its own: group commits, sequence numbers, idempotency, reopen.

use std::sync::Arc;

use chathook_events::{Event, EventLog, Message, MessageHeader};
use chathook_store::{AppendOutcome, MessageStore, NewMessage, SqliteOptions, SqliteStore};

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
