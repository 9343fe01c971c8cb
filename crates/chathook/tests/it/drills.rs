//! Failure drills at test size: a full disk, a read-only data dir, and a receiver that refuses
//! connections for a while.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::util::*;

/// Whether a drill's mount worked; a failed one fails the test unless `CHATHOOK_SKIP_MOUNT_DRILLS` is set
/// (CI runs as root, so there the drills always run).
fn mounted_or_skipped(ok: bool, drill: &str) -> bool {
    assert!(
        ok || std::env::var_os("CHATHOOK_SKIP_MOUNT_DRILLS").is_some(),
        "{drill} and needs root; set CHATHOOK_SKIP_MOUNT_DRILLS=1 to skip it"
    );
    ok
}

/// A small tmpfs mounted for the test and unmounted on drop (the drill needs root, as CI runs).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted_or_skipped(ok, "the disk-full drill mounts a tmpfs").then_some(SmallDisk { dir })
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_clearly_and_recovers_without_corruption() {
    let Some(disk) = SmallDisk::mount("3m") else {
        return;
    };
    let s = TestServer::start_in(disk.dir.path(), |c| c.limits.max_payload_bytes = 300_000).await;
    let big = b64(&"z".repeat(120_000));
    let mut acked = Vec::new();
    let mut refusal = None;
    for i in 0..200 {
        let (st, body) = s
            .post(
                "/message/send",
                json!({"from_uid": "alice", "channel_id": "bob", "channel_type": 1,
                                          "client_msg_no": format!("f{i}"), "payload": big}),
            )
            .await;
        if st == 200 {
            acked.push(body["data"]["message_seq"].as_u64().unwrap());
        } else {
            refusal = Some((st, body));
            break;
        }
    }
    let (st, body) = refusal.expect("the disk never filled");
    assert_eq!(st, 503, "{body}");
    assert_eq!(body["code"], "storage_unwritable");
    assert!(!acked.is_empty());
    // the server still answers, and what was acknowledged is intact
    assert_eq!(s.call("GET", "/health", None, None).await.0, 200);
    let page = s.sync("bob", "alice", 1, (1, 0), 1000, 1).await;
    assert_eq!(seqs(&page), acked);

    // space returns: writes work again, seqs go on without a gap, and a restart reads everything
    disk.resize("64m");
    let (st, body) = s.rest_send("alice", "bob", 1, "after").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["data"]["message_seq"].as_u64().unwrap(),
        acked.len() as u64 + 1
    );
    let s = s.restart(|_| {}).await;
    let page = s.sync("bob", "alice", 1, (1, 0), 1000, 1).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), acked.len() + 1);
    drop(s);
}

/// A directory bind-mounted read-only onto itself, unmounted on drop (needs root, as CI runs). While
/// the server runs, the files it holds open for writing make such a remount fail (EBUSY), so the drill
/// mounts it between two runs.
struct ReadOnly<'a> {
    dir: &'a std::path::Path,
}

impl<'a> ReadOnly<'a> {
    fn mount(dir: &'a std::path::Path) -> Option<ReadOnly<'a>> {
        let bound = Command::new("mount")
            .arg("--bind")
            .args([dir, dir])
            .status()
            .is_ok_and(|s| s.success());
        if !mounted_or_skipped(bound, "the read-only drill bind-mounts a dir") {
            return None;
        }
        let guard = ReadOnly { dir };
        // The stopped server's last store handles (the writer thread, pooled readers) close a moment
        // after `stop` returns; until then the remount fails with EBUSY. Try for a few seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let status = Command::new("mount")
                .args(["-o", "remount,ro,bind"])
                .arg(dir)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            if status.success() {
                return Some(guard);
            }
            assert!(std::time::Instant::now() < deadline, "remount read-only");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ReadOnly<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir).status();
    }
}

#[tokio::test]
async fn a_read_only_data_dir_is_refused_clearly_and_nothing_stored_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = TestServer::start_in(tmp.path(), |_| {}).await;
    for i in 0..20 {
        let (st, body) = s.rest_send("alice", "bob", 1, &format!("m{i}")).await;
        assert_eq!(st, 200, "{body}");
    }
    s.stop().await;
    {
        let Some(_ro) = ReadOnly::mount(tmp.path()) else {
            return;
        };
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused = chathook::Server::start(test_config(tmp.path()), api, ws).await;
        let why = format!(
            "{:#}",
            refused.err().expect("a read-only data dir must be refused")
        );
        assert!(
            why.contains(&tmp.path().display().to_string()) && why.contains("read-only"),
            "the error names the dir and the cause: {why}"
        );
    }
    // writable again: everything is there and writes go on from where they stopped
    let s = TestServer::start_in(tmp.path(), |_| {}).await;
    let page = s.sync("bob", "alice", 1, (1, 0), 1000, 1).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 20);
    let (st, body) = s.rest_send("alice", "bob", 1, "after").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["message_seq"], 21);
}

#[tokio::test]
async fn a_receiver_refusing_connections_then_back_gets_every_event_once_by_id() {
    let s = TestServer::start_with(|c| {
        c.webhook.retry_schedule = std::iter::once(Duration::ZERO)
            .chain(vec![Duration::from_millis(200); 30])
            .collect();
        c.webhook.retry_jitter = 0.0;
        c.webhook.msg_notify_interval = Duration::from_millis(50);
    })
    .await;
    let rcv = Receiver::start().await;
    let url = rcv.url.clone();
    let ep = s
        .endpoint(json!({"url": url, "events": ["message.sent", "group.created"]}))
        .await;
    // the receiver goes away: connections are refused
    let port = rcv.port();
    drop(rcv);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut sent = HashSet::new();
    for i in 0..30 {
        let (_, b) = s.rest_send("alice", "bob", 1, &format!("{i}")).await;
        sent.insert(b["data"]["message_id"].as_i64().unwrap());
    }
    s.group("g", &["alice"]).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rcv = Receiver::start_on(port).await;
    rcv.wait(
        "every event after the outage",
        Duration::from_secs(15),
        |r| r.iter().map(|x| x.id()).collect::<HashSet<_>>().len() >= 31,
    )
    .await;
    let mut by_id: HashMap<String, serde_json::Value> = HashMap::new();
    for r in rcv.requests() {
        by_id.insert(r.id(), r.json());
    }
    let delivered: HashSet<i64> = by_id
        .values()
        .filter_map(|v| v["data"]["message_id"].as_i64())
        .collect();
    assert_eq!(delivered, sent, "each message once by id");
    assert_eq!(
        by_id
            .values()
            .filter(|v| v["type"] == "group.created")
            .count(),
        1
    );
    let path = format!(
        "/v1/webhooks/endpoints/{}/attempts?status=failure&limit=1000",
        ep["id"].as_str().unwrap()
    );
    let (_, failures) = s.call("GET", &path, None, Some(ADMIN)).await;
    let failures = failures["data"].as_array().unwrap();
    assert!(!failures.is_empty(), "the outage was never seen");
    // refused connections (a pooled connection cut by the receiver's exit may fail otherwise)
    assert!(
        failures
            .iter()
            .any(|a| a["error"].as_str().unwrap().contains("connection failed")),
        "{failures:?}"
    );
}
