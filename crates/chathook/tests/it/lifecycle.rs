//! Start, graceful shutdown, restart and crash: history, events and cursors survive; connections that
//! were online are reported offline; the binary's config command and admin key file.

use std::process::Command;
use std::time::Duration;

use chathook_events::{Event, EventLog, PresenceReason, StartAt};
use chathook_store::{SqliteOptions, SqliteStore};
use serde_json::json;

use crate::util::*;

#[tokio::test]
async fn graceful_shutdown_disconnects_clients_and_reports_them_offline() {
    let mut s = TestServer::start().await;
    let mut alice = s.login("alice", 0).await;
    let mut bob = s.login("bob", 1).await;
    s.rest_send("alice", "bob", 1, "before stop").await;
    let stopping = {
        let server = s.server.take().unwrap();
        tokio::spawn(server.stop())
    };
    for c in [&mut alice, &mut bob] {
        let closed = c.closed(LONG).await;
        let d = closed.disconnect.expect("a disconnect notification");
        assert!(
            d["params"]["reason"]
                .as_str()
                .unwrap()
                .contains("shutting down"),
            "{d}"
        );
    }
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();

    let s = TestServer::start_in(&s.dir, |_| {}).await;
    let offline: Vec<_> = s
        .events()
        .await
        .into_iter()
        .filter_map(|e| match e.event {
            Event::UserOffline(c) => Some((c.uid, c.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(offline.len(), 2);
    assert!(
        offline
            .iter()
            .all(|(_, r)| *r == PresenceReason::ServerShutdown),
        "{offline:?}"
    );
    assert!(s.events().await.iter().all(|e| !matches!(&e.event, Event::UserOffline(c) if c.reason == PresenceReason::ServerRestart)),
        "nothing left to recover after a clean stop");
    drop(tempfile::TempDir::new());
}

#[tokio::test]
async fn history_events_and_cursors_survive_a_restart() {
    let s = TestServer::start().await;
    s.group("g", &["alice", "bob"]).await;
    let mut alice = s.login("alice", 0).await;
    for i in 0..5 {
        alice.send_msg("g", 2, &format!("k{i}"), "x").await;
    }
    s.server()
        .store()
        .register_consumer("webhook-1", StartAt::Beginning)
        .await
        .unwrap();
    let mid = s.events().await[3].position;
    s.server().store().ack("webhook-1", mid).await.unwrap();
    let before = s.events().await;
    drop(alice);
    s.wait_event("alice offline", |e| {
        matches!(&e.event, Event::UserOffline(_))
    })
    .await;

    let s = s.restart(|_| {}).await;
    let after = s.events().await;
    assert_eq!(&after[..before.len()], &before[..], "the log is intact");
    assert_eq!(
        s.server()
            .store()
            .consumer_position("webhook-1")
            .await
            .unwrap(),
        mid
    );
    let page = s.sync("alice", "g", 2, (1, 0), 100, 1).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 5);
    // ids and seqs continue after the restart
    let mut alice = s.login("alice", 0).await;
    let r = alice.send_msg("g", 2, "k-next", "x").await;
    assert_eq!(r["result"]["messageSeq"], 6);
    let last_id: i64 = page["messages"][4]["message_id"].as_i64().unwrap();
    assert!(
        r["result"]["messageId"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > last_id
    );
    // idempotency keys survive too
    let again = alice.send_msg("g", 2, "k0", "x").await;
    assert_eq!(again["result"]["messageSeq"], 1);
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_message_and_reports_connections_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = spawn_binary(tmp.path()).await;
    admin_post(
        &p.api,
        "/user/token",
        json!({"uid": "alice", "token": "ta", "device_flag": 0}),
    )
    .await;
    let mut alice = Client::open(&p.ws).await;
    assert_eq!(
        alice.connect("alice", "ta", 0).await["result"]["reasonCode"],
        1
    );
    let mut acked = Vec::new();
    for i in 0..50 {
        let r = alice.send_msg("bob", 1, &format!("c{i}"), "x").await;
        acked.push(r["result"]["messageSeq"].as_u64().unwrap());
    }
    p.child.kill().unwrap(); // SIGKILL
    p.child.wait().unwrap();

    let mut p = spawn_binary(tmp.path()).await;
    let page = admin_post(
        &p.api,
        "/channel/messagesync",
        json!({"login_uid": "bob", "channel_id": "alice", "channel_type": 1,
        "start_message_seq": 1, "limit": 1000, "pull_mode": 1}),
    )
    .await;
    assert_eq!(
        seqs(&page),
        acked,
        "every acknowledged message is there, in order"
    );
    signal(&p.child, "-TERM");
    let status = p.child.wait().unwrap();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");

    let store = SqliteStore::open(SqliteOptions::new(tmp.path())).unwrap();
    let events = store.read_after(0, 10_000).await.unwrap();
    let restart: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::UserOffline(c) if c.reason == PresenceReason::ServerRestart => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        restart.len(),
        1,
        "alice's connection is reported offline after the crash"
    );
    assert_eq!(
        (restart[0].uid.as_str(), restart[0].total_online_count),
        ("alice", 0)
    );
    let sent = events
        .iter()
        .filter(|e| e.event.name() == "message.sent")
        .count();
    assert_eq!(sent, 50, "every acknowledged message's event is in the log");
}

#[test]
fn config_command_prints_the_effective_config_with_secrets_masked() {
    let out = Command::new(env!("CARGO_BIN_EXE_chathook"))
        .arg("config")
        .env("CHATHOOK_ADMIN_KEY", "very-secret-admin-key")
        .env("CHATHOOK_LIMITS__SYNC_MAX_LIMIT", "77")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("very-secret-admin-key"));
    assert!(text.contains("admin_key = \"********\""), "{text}");
    assert!(text.contains("sync_max_limit = 77"), "{text}");
    assert!(text.contains("api_addr = \"127.0.0.1:5001\""), "{text}");

    let bad = Command::new(env!("CARGO_BIN_EXE_chathook"))
        .arg("config")
        .env("CHATHOOK_LIMITS__SYNC_MAX_LIMT", "77")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("sync_max_limt"));
}

#[tokio::test]
async fn a_missing_admin_key_is_generated_once_with_mode_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(tmp.path(), |c| c.admin_key = None).await;
    let path = tmp.path().join("admin.key");
    let key = std::fs::read_to_string(&path).unwrap();
    assert_eq!(key.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (st, _) = s
        .call("POST", "/user/onlinestatus", Some(json!([])), Some(&key))
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .call("POST", "/user/onlinestatus", Some(json!([])), Some(ADMIN))
        .await;
    assert_eq!(st, 401);
    let s = s.restart(|c| c.admin_key = None).await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        key,
        "the same key after a restart"
    );
    drop(s);
}

#[tokio::test]
async fn kill_9_mid_stream_loses_no_webhook_event() {
    let rcv = Receiver::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut p = spawn_binary(tmp.path()).await;
    let ep = admin_post(
        &p.api,
        "/v1/webhooks/endpoints",
        json!({"url": rcv.url, "events": ["message.sent"]}),
    )
    .await;
    assert!(ep["id"].is_string(), "{ep}");
    let api = p.api.clone();
    let flood = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut acked = Vec::new();
        for i in 0..2000 {
            let body = json!({"from_uid": "alice", "channel_id": "bob", "channel_type": 1,
                              "client_msg_no": format!("k{i}"), "payload": b64("{}")});
            let Ok(resp) = http
                .post(format!("{api}/message/send"))
                .header("token", ADMIN)
                .json(&body)
                .send()
                .await
            else {
                break;
            };
            let Ok(v) = resp.json::<serde_json::Value>().await else {
                break;
            };
            match v["data"]["message_id"].as_i64() {
                Some(id) => acked.push(id),
                None => break,
            }
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    let acked = flood.await.unwrap();
    assert!(
        acked.len() > 10,
        "only {} messages before the kill",
        acked.len()
    );
    let mut p = spawn_binary(tmp.path()).await;
    let delivered = |reqs: &[Recorded]| -> std::collections::HashSet<i64> {
        reqs.iter()
            .filter_map(|r| r.json()["data"]["message_id"].as_i64())
            .collect()
    };
    rcv.wait("every acknowledged message", Duration::from_secs(20), |r| {
        let got = delivered(r);
        acked.iter().all(|id| got.contains(id))
    })
    .await;
    signal(&p.child, "-TERM");
    assert!(p.child.wait().unwrap().success());
}

#[tokio::test]
async fn a_graceful_stop_writes_every_attempt_made_before_it() {
    let s = TestServer::start().await;
    let rcv = Receiver::start().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let ep = s
            .endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
            .await;
        ids.push(ep["id"].as_str().unwrap().to_string());
    }
    // every attempt is still in flight when the stop begins: the dispatchers wait for the answers and
    // record them on their way out, hundreds at once
    rcv.set(Mode::Delay(Duration::from_millis(500)));
    for i in 0..30 {
        s.rest_send("alice", "bob", 1, &format!("m{i}")).await;
    }
    rcv.wait("every delivery", LONG, |r| r.len() >= 600).await;
    let s = s.restart(|_| {}).await;
    let mut logged = 0;
    for id in &ids {
        let (st, page) = s
            .call(
                "GET",
                &format!("/v1/webhooks/endpoints/{id}/attempts?limit=1000"),
                None,
                Some(ADMIN),
            )
            .await;
        assert_eq!(st, 200, "{page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.iter().all(|a| a["success"] == true), "{page}");
        logged += data.len();
    }
    assert_eq!(
        logged,
        rcv.requests().len(),
        "one logged attempt per request made"
    );
}

#[tokio::test]
async fn the_log_is_plain_text_off_a_terminal_and_one_json_object_a_line_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    for (format, log) in [("text", "text.log"), ("json", "json.log")] {
        let log = tmp.path().join(log);
        let settings = [
            ("CHATHOOK_LOG__FORMAT", format.to_string()),
            ("RUST_LOG", "info".to_string()),
        ];
        let mut proc = spawn_binary_logging(&tmp.path().join(format), &log, &settings).await;
        let _ = proc.child.kill();
        let _ = proc.child.wait();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("chathook is serving"), "{format}: {text}");
        assert!(
            !text.contains('\x1b'),
            "{format}: colour codes in a file: {text}"
        );
        if format == "json" {
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{e}: not one JSON object: {line}"));
                assert!(
                    v["level"].is_string() && v["timestamp"].is_string(),
                    "{line}"
                );
            }
            assert!(
                text.contains(r#""message":"chathook is serving""#),
                "{text}"
            );
        }
    }
}
