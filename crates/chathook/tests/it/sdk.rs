//! WuKongIM's official Python client (PyPI `wukong-easy-sdk`) against the real server: connect, 1:1 and
//! group send and receive, and a heartbeat that outlives several ping intervals and the server's own
//! heartbeat timeout. `.ci/run` installs the package.

use std::process::Command;

use crate::util::*;

#[tokio::test]
async fn the_official_python_client_connects_sends_receives_and_keeps_its_heartbeat() {
    // The server drops a connection silent for 1.5 s; the client pings every 0.4 s for 3 s.
    let s = TestServer::start_with(|c| c.gateway.heartbeat_timeout_ms = 1_500).await;
    for uid in ["alice", "bob", "carol"] {
        s.token(uid, &format!("t-{uid}"), 2, 0).await;
    }
    s.group("sdk-group", &["alice", "bob", "carol"]).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/sdk/wukong_easy_sdk_check.py"
    );
    let ws = s.ws.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([script, &ws, "0.4", "3"])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "wukong-easy-sdk (pip install wukong-easy-sdk) failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
    assert_eq!(seen["ok"], true);
    assert_eq!(seen["connected"]["serverVersion"], 5);
}
