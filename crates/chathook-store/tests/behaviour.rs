//! Behaviour every store must have, written once and run against each backend: the embedded SQLite
//! store and the PostgreSQL store (a real cluster started for the test). A trait the PostgreSQL store
//! implements gets its behaviour here, not a copy per backend.

use std::collections::BTreeMap;

use chathook_events::{Event, EventLog, ProfileChange};
use chathook_store::{PgStore, Profile, SqliteOptions, SqliteStore, TokenRecord, UserStore};
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

#[tokio::test]
async fn users_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    users(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_in_postgres() {
    let pg = Postgres::start().unwrap();
    let store = PgStore::connect(&pg.database("users").unwrap(), 4)
        .await
        .unwrap();
    users(&store).await;
}
