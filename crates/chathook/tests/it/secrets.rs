//! Secrets at rest: the data directory is private (0700, its files 0600) and a looser one is named in
//! a warning at start.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

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
    let (api_port, ws_port) = (free_port(), free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chathook"))
        .env("CHATHOOK_API_ADDR", format!("127.0.0.1:{api_port}"))
        .env("CHATHOOK_WS_ADDR", format!("127.0.0.1:{ws_port}"))
        .env("CHATHOOK_DATA_DIR", &dir)
        .env("CHATHOOK_ADMIN_KEY", ADMIN)
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{api_port}/health")).await {
            up = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "the server did not start");
    let text = std::fs::read_to_string(&log).unwrap();
    let warning = format!("chmod 700 {}", dir.display());
    assert!(text.contains(&warning), "{text}");
    // The operator's mode is left as it was; the database it made is private.
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(mode(&dir.join("chathook.db")), 0o600);
}
