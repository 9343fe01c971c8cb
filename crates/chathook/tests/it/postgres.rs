//! The server on PostgreSQL (`storage.backend = "postgres"`) against a real cluster started for the
//! test: the same paths a single node takes, end to end, and a restart that finds everything again.

use chathook::config::Backend;
use chathook_testkit::Postgres;
use serde_json::json;

use crate::util::*;

fn on(url: &str) -> impl FnOnce(&mut chathook::Config) + '_ {
    move |c| {
        c.storage.backend = Backend::Postgres;
        c.storage.postgres_url = Some(url.to_string());
        c.storage.postgres_max_connections = 4;
    }
}

#[tokio::test]
async fn messages_history_groups_and_webhooks_work_on_postgres_and_survive_a_restart() {
    let pg = Postgres::start().unwrap();
    let url = pg.database("server").unwrap();
    let s = TestServer::start_with(on(&url)).await;
    let rcv = Receiver::start().await;
    s.endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    let mut alice = s.login("alice", 0).await;
    let mut bob = s.login("bob", 0).await;
    let ack = alice.send_msg("bob", 1, "m-1", "hello").await;
    assert_eq!(ack["result"]["messageSeq"], 1, "{ack}");
    let got = bob.recv(LONG, true).await.expect("bob receives");
    assert_eq!(
        payload_json(&got["params"]["payload"]),
        json!({"type": 1, "content": "hello"})
    );
    // a group
    s.group("g1", &["alice", "bob"]).await;
    let ack = bob.send_msg("g1", 2, "g-1", "to the group").await;
    assert_eq!(ack["result"]["messageSeq"], 1, "{ack}");
    alice
        .recv(LONG, true)
        .await
        .expect("alice gets the group message");
    // the webhook saw both messages
    rcv.wait("both message.sent", LONG, |r| r.len() >= 2).await;
    // history through the REST API
    let page = s.sync("alice", "bob", 1, (0, 0), 10, 0).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1, "{page}");
    drop((alice, bob));
    // a restart on the same database finds history, tokens and the endpoint again
    let s = s.restart(on(&url)).await;
    let page = s.sync("bob", "g1", 2, (0, 0), 10, 0).await;
    assert_eq!(page["messages"][0]["client_msg_no"], "g-1", "{page}");
    let (st, endpoints) = s
        .call("GET", "/v1/webhooks/endpoints", None, Some(ADMIN))
        .await;
    assert_eq!((st, endpoints["data"].as_array().unwrap().len()), (200, 1));
    let mut alice = s.login("alice", 0).await;
    let ack = alice.send_msg("bob", 1, "m-2", "again").await;
    assert_eq!(
        ack["result"]["messageSeq"], 2,
        "seqs go on after the restart: {ack}"
    );
}

#[tokio::test]
async fn a_missing_or_unreachable_database_stops_the_start_and_the_url_stays_hidden() {
    let mut config = chathook::Config::default();
    config.storage.backend = Backend::Postgres;
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("storage.postgres_url"), "{e}");
    // the URL never shows in the configuration as printed
    config.storage.postgres_url = Some("postgres://chathook:pw-7f3a@127.0.0.1:9/x".into());
    assert!(!config.to_masked_toml().contains("pw-7f3a"));
    assert!(!format!("{config:?}").contains("pw-7f3a"));
    // nothing listens there: the start fails and says which setting
    let dir = tempfile::tempdir().unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.admin_key = Some(ADMIN.into());
    config.secrets.key = Some(SECRETS_KEY.into());
    let text = start_refused(config).await;
    assert!(text.contains("storage.postgres_url"), "{text}");
    assert!(!text.contains("pw-7f3a"), "{text}");
    // a database that does not exist: PostgreSQL's own words say so
    let pg = Postgres::start().unwrap();
    let url = pg.database("present").unwrap().replace("present", "absent");
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.storage.backend = Backend::Postgres;
    config.storage.postgres_url = Some(url);
    let text = start_refused(config).await;
    assert!(
        text.contains("database \"absent\" does not exist"),
        "{text}"
    );
}
