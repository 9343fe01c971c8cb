//! Secrets at rest: the data directory is private (0700, its files 0600) and a looser one is named in
//! a warning at start.

use std::os::unix::fs::PermissionsExt;

use crate::util::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_new_data_dir_and_the_files_chathook_makes_in_it_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fresh/data");
    let mut s = TestServer::start_in(&dir, |c| c.admin_key = None).await;
    s.rest_send("alice", "bob", 1, "hello").await;
    assert_eq!(mode(&dir), 0o700);
    for name in [
        "chathook.db",
        "chathook.db-wal",
        "chathook.db-shm",
        "admin.key",
    ] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_data_dir_others_can_read_is_named_in_a_warning_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("open");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = tmp.path().join("stdout.log");
    let mut proc = spawn_binary_logging(&dir, &log, &[]).await;
    let _ = proc.child.kill();
    let _ = proc.child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let warning = format!("chmod 700 {}", dir.display());
    assert!(text.contains(&warning), "{text}");
    // The operator's mode is left as it was; the database it made is private.
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(mode(&dir.join("chathook.db")), 0o600);
}

/// Everything the embedded store holds on disk (the database and its WAL), as text.
fn on_disk(dir: &std::path::Path) -> String {
    ["chathook.db", "chathook.db-wal"]
        .iter()
        .filter_map(|f| std::fs::read(dir.join(f)).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

/// Whether `r` is signed with `secret`.
fn signed_with(r: &Recorded, secret: &str) -> bool {
    let ts: i64 = r.headers["webhook-timestamp"].parse().unwrap();
    let expected = chathook_webhook::signing::signature_header(&[secret], &r.id(), ts, &r.body);
    r.headers["webhook-signature"] == expected
}

fn key_of(n: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([n; 32])
}

#[tokio::test]
async fn endpoint_secrets_and_sign_tokens_are_sealed_on_disk_and_still_sign_after_a_restart() {
    let s = TestServer::start().await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(serde_json::json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    let secret = ep["secret"].as_str().unwrap().to_string();
    let tencent = s
        .endpoint(serde_json::json!({"url": rcv.url, "flavour": "tencent",
            "events": ["C2C.CallbackAfterSendMsg"], "sign_token": "sign-token-7d1e"}))
        .await;
    assert!(tencent["id"].is_string());
    let disk = on_disk(&s.dir);
    assert!(
        !disk.contains(&secret),
        "the signing secret is on disk in clear"
    );
    assert!(!disk.contains(&secret["whsec_".len()..]));
    assert!(
        !disk.contains("sign-token-7d1e"),
        "the sign token is on disk in clear"
    );
    let s = s.restart(|_| {}).await;
    s.rest_send("alice", "bob", 1, "after the restart").await;
    rcv.wait("the message", LONG, |r| {
        r.iter().any(|r| r.json()["type"] == "message.sent")
    })
    .await;
    let delivered = rcv.requests();
    let sent = delivered
        .iter()
        .find(|r| r.json()["type"] == "message.sent")
        .unwrap();
    assert!(
        signed_with(sent, &secret),
        "signed with the secret given at creation"
    );
}

#[tokio::test]
async fn a_rotated_secrets_key_opens_the_old_seals_and_seals_them_anew() {
    let s = TestServer::start_with(|c| c.secrets.key = Some(key_of(1))).await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(serde_json::json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    let secret = ep["secret"].as_str().unwrap().to_string();
    s.token("alice", "t-alice", 0, 1).await;
    // A server with another key and without the old one refuses to start: it names the setting.
    let mut s = s;
    s.stop().await;
    let mut wrong = test_config(&s.dir);
    wrong.secrets.key = Some(key_of(2));
    let e = start_refused(wrong).await;
    assert!(e.contains("secrets"), "{e}");
    // The new key with the old one listed: everything opens, and is sealed again under the new key.
    let s = s
        .restart(|c| {
            c.secrets.key = Some(key_of(2));
            c.secrets.previous_keys = vec![key_of(1)];
        })
        .await;
    let mut alice = Client::open(&s.ws).await;
    assert_eq!(
        alice.connect("alice", "t-alice", 0).await["result"]["reasonCode"],
        1
    );
    drop(alice);
    // Now the old key can go.
    let s = s.restart(|c| c.secrets.key = Some(key_of(2))).await;
    let mut alice = Client::open(&s.ws).await;
    assert_eq!(
        alice.connect("alice", "t-alice", 0).await["result"]["reasonCode"],
        1
    );
    s.rest_send("bob", "carol", 1, "x").await;
    rcv.wait("the message", LONG, |r| !r.is_empty()).await;
    assert!(signed_with(&rcv.requests()[0], &secret));
}

#[test]
fn several_nodes_on_postgresql_need_a_secrets_key_they_share() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.secrets.key = None;
    config.storage.backend = chathook::config::Backend::Postgres;
    let e = chathook::secrets::resolve(&config).unwrap_err();
    assert!(format!("{e:#}").contains("secrets.key"), "{e:#}");
    // The embedded store generates one, privately, and uses it again.
    config.storage.backend = chathook::config::Backend::Sqlite;
    let first = chathook::secrets::resolve(&config).unwrap().fingerprint();
    let file = dir.path().join("secrets.key");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(
        chathook::secrets::resolve(&config).unwrap().fingerprint(),
        first
    );
}

#[tokio::test]
async fn receiver_headers_credentials_and_keys_are_sealed_on_disk_and_never_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let log = tmp.path().join("stdout.log");
    let mut proc = spawn_binary_logging(&dir, &log, &[("RUST_LOG", "debug".into())]).await;
    let rcv = Receiver::start().await;
    // Failing, so that the delivery is logged as it fails and retries.
    rcv.set(Mode::Status(500));
    let client = TlsReceiver::start().await.client_cert();
    let https = admin_post(
        &proc.api,
        "/v1/webhooks/endpoints",
        serde_json::json!({"url": "https://receiver.example.com/hook",
            "tls": {"client_cert": client.cert, "client_key": client.key}}),
    )
    .await;
    assert!(https["id"].is_string(), "{https}");
    let ep = admin_post(
        &proc.api,
        "/v1/webhooks/endpoints",
        serde_json::json!({"url": rcv.url, "events": ["message.sent"],
            "headers": {"X-Api-Key": "header-secret-5f1"},
            "basic_auth": {"username": "hook", "password": "basic-secret-9c2"}}),
    )
    .await;
    assert!(ep["id"].is_string(), "{ep}");
    admin_post(
        &proc.api,
        "/message/send",
        serde_json::json!({"from_uid": "alice", "channel_id": "bob", "channel_type": 1,
            "payload": b64("{\"type\":1,\"content\":\"hi\"}")}),
    )
    .await;
    rcv.wait("the failing attempt", LONG, |r| !r.is_empty())
        .await;
    assert_eq!(rcv.requests()[0].headers["x-api-key"], "header-secret-5f1");
    let _ = proc.child.kill();
    let _ = proc.child.wait();
    let key_body = client
        .key
        .lines()
        .find(|l| !l.starts_with("-----"))
        .unwrap()
        .to_string();
    let logged = std::fs::read_to_string(&log).unwrap();
    let disk = on_disk(&dir);
    assert!(logged.contains("DEBUG"), "the log is at debug level");
    for secret in ["header-secret-5f1", "basic-secret-9c2", key_body.as_str()] {
        assert!(!logged.contains(secret), "{secret} in the log");
        assert!(!disk.contains(secret), "{secret} on disk in clear");
    }
}
