//! WuKongIM's JavaScript SDK, npm `wukongimjssdk` 1.0.4 unchanged (the version the registry serves;
//! binary protocol version 2, X25519 + AES), in Node against the real server, beside JSON-RPC clients:
//! 1:1 and group messages both ways, a long message, a REST send, heartbeats at a short interval,
//! disconnect and reconnect, a refused token that stops its retries, a kick. The SDK runs in
//! `sdk/js/client.mjs`, one user per process, driven by JSON lines (`scripts/test` runs `npm ci` there).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::util::*;

/// Connect statuses the SDK reports (`ConnectStatus`).
const CONNECTED: i64 = 1;
const CONNECTING: i64 = 2;
const CONNECT_FAIL: i64 = 3;
const CONNECT_KICK: i64 = 4;

/// One SDK user in its own Node process.
struct Sdk {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// Every event so far, in order.
    seen: Vec<Value>,
}

impl Sdk {
    async fn start() -> Sdk {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/sdk/js");
        assert!(
            dir.join("node_modules/wukongimjssdk").exists(),
            "the SDK is not installed: run `npm ci` in {} (scripts/test does)",
            dir.display()
        );
        let mut child = Command::new("node")
            .args(["--import", "./register.mjs", "client.mjs"])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut sdk = Sdk {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        };
        sdk.wait("the SDK loaded", LONG, |e| e["event"] == "ready")
            .await;
        sdk
    }

    /// Starts the SDK's connect to `s` as `uid` (web, device flag 1, as the SDK is by default).
    async fn connect(s: &TestServer, uid: &str, heartbeat_ms: u64) -> Sdk {
        let token = format!("tok-{uid}-1");
        s.token(uid, &token, 1, 0).await;
        let mut sdk = Sdk::start().await;
        sdk.order(json!({"op": "connect", "addr": s.ws, "uid": uid, "token": token, "heartbeatMs": heartbeat_ms}))
            .await;
        sdk.wait("connected", LONG, |e| is_status(e, CONNECTED))
            .await;
        sdk
    }

    async fn order(&mut self, command: Value) {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn send(&mut self, channel: &str, channel_type: u8, text: &str) -> Value {
        let acks = self.count(|e| e["event"] == "sendack");
        self.order(json!({"op": "send", "channel": channel, "type": channel_type, "text": text}))
            .await;
        self.wait("its sendack", LONG, |e| e["event"] == "sendack")
            .await;
        let ack = self
            .seen
            .iter()
            .filter(|e| e["event"] == "sendack")
            .nth(acks)
            .cloned()
            .unwrap();
        assert_eq!(ack["reasonCode"], 1, "{ack}");
        ack
    }

    fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.seen.iter().filter(|e| pred(e)).count()
    }

    /// The first event not yet returned by `wait` that matches `pred` (reading on for `timeout`).
    async fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.next_matching(timeout, &pred)
            .await
            .unwrap_or_else(|| panic!("the SDK never reported {what}; it said: {}", self.said()))
    }

    /// Reads events for `timeout` and returns the first that matches, or `None`.
    async fn next_matching(
        &mut self,
        timeout: Duration,
        pred: &impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .ok()?
                .ok()??;
            let event: Value = serde_json::from_str(&line).expect("a JSON line");
            self.seen.push(event.clone());
            if pred(&event) {
                return Some(event);
            }
        }
    }

    /// What the SDK reported so far, long texts cut.
    fn said(&self) -> String {
        let cut: Vec<Value> = self
            .seen
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Some(t) = e["text"].as_str().filter(|t| t.len() > 60) {
                    e["text"] = json!(format!("{}... ({} bytes)", &t[..60], t.len()));
                }
                e
            })
            .collect();
        serde_json::to_string(&cut).unwrap_or_default()
    }

    /// Every event that arrives within `within`.
    async fn quiet_for(&mut self, within: Duration) -> Vec<Value> {
        let before = self.seen.len();
        self.next_matching(within, &|_| false).await;
        self.seen[before..].to_vec()
    }
}

impl Drop for Sdk {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn is_status(e: &Value, status: i64) -> bool {
    e["event"] == "status" && e["status"] == status
}

fn is_message(text: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == "message" && e["text"] == text && e["send"] == false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_sdk_talks_with_json_rpc_clients_one_to_one_in_groups_long_and_from_rest() {
    let s = TestServer::start().await;
    let mut ann = Sdk::connect(&s, "ann", 60_000).await;
    let mut ben = s.login("ben", 0).await;
    // SDK to JSON-RPC
    let ack = ann.send("ben", 1, "hello ben").await;
    let got = ben.recv(LONG, true).await.expect("ben receives");
    assert_eq!(got["params"]["messageId"], ack["messageID"]);
    assert_eq!(got["params"]["channelId"], "ann");
    assert_eq!(
        payload_json(&got["params"]["payload"]),
        json!({"type": 1, "content": "hello ben"})
    );
    // JSON-RPC to SDK: decrypted, its msgKey checked by the SDK
    let sent = ben.send_msg("ann", 1, "b-1", "hello ann").await;
    let m = ann
        .wait("ben's message", LONG, is_message("hello ann"))
        .await;
    assert_eq!(m["messageID"], sent["result"]["messageId"]);
    assert_eq!(
        (&m["fromUID"], &m["channelID"], &m["channelType"]),
        (&json!("ben"), &json!("ben"), &json!(1))
    );
    // a group of both kinds
    s.group("g1", &["ann", "ben", "cid"]).await;
    let mut cid = s.login("cid", 0).await;
    ann.send("g1", 2, "to the group").await;
    for c in [&mut ben, &mut cid] {
        let got = c.recv(LONG, true).await.expect("a member receives");
        assert_eq!(got["params"]["channelId"], "g1");
    }
    cid.send_msg("g1", 2, "c-1", "from cid").await;
    let m = ann
        .wait("cid's group message", LONG, is_message("from cid"))
        .await;
    assert_eq!(
        (&m["channelID"], &m["fromUID"]),
        (&json!("g1"), &json!("cid"))
    );
    let _ = ben.recv(LONG, true).await;
    // long messages both ways: three-byte remaining lengths
    let long: &'static str = Box::leak("x".repeat(30_000).into_boxed_str());
    ann.send("ben", 1, long).await;
    let got = ben.recv(LONG, true).await.expect("the long message");
    assert_eq!(payload_json(&got["params"]["payload"])["content"], long);
    ben.send_msg("ann", 1, "b-long", long).await;
    ann.wait("the long message", LONG, is_message(long)).await;
    // from the backend
    let (st, body) = s.rest_send("ben", "ann", 1, "from rest").await;
    assert_eq!(st, 200, "{body}");
    let from_rest = ann
        .wait("the REST message", LONG, is_message("from rest"))
        .await;
    assert_eq!(
        from_rest["messageSeq"], body["data"]["message_seq"],
        "{from_rest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_heartbeats_keep_the_sdk_connected_and_it_reconnects_after_a_disconnect() {
    // the server drops a connection silent for 600 ms; the SDK pings every 150 ms
    let s = TestServer::start_with(|c| c.gateway.heartbeat_timeout_ms = 600).await;
    let mut ann = Sdk::connect(&s, "ann", 150).await;
    let later = ann.quiet_for(Duration::from_secs(2)).await;
    assert!(
        later.iter().all(|e| e["event"] != "status"),
        "stayed connected: {later:?}"
    );
    ann.order(json!({"op": "disconnect"})).await;
    eventually("ann offline after the SDK's disconnect", LONG, || async {
        let (_, online) = s.post("/user/onlinestatus", json!(["ann"])).await;
        match online.as_array() {
            Some(a) if a.is_empty() => Ok(()),
            None if online["status"] == 200 => Ok(()),
            _ => Err(online.to_string()),
        }
    })
    .await;
    let token = "tok-ann-1";
    ann.order(
        json!({"op": "connect", "addr": s.ws, "uid": "ann", "token": token, "heartbeatMs": 150}),
    )
    .await;
    ann.wait("connected again", LONG, |e| is_status(e, CONNECTED))
        .await;
    let mut ben = s.login("ben", 0).await;
    ben.send_msg("ann", 1, "b-1", "after the reconnect").await;
    ann.wait("a message", LONG, is_message("after the reconnect"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_stops_the_sdk_and_a_kick_ends_it() {
    let s = TestServer::start().await;
    s.token("ann", "right", 1, 1).await;
    let mut wrong = Sdk::start().await;
    wrong
        .order(json!({"op": "connect", "addr": s.ws, "uid": "ann", "token": "wrong"}))
        .await;
    let failed = wrong
        .wait("the refusal", LONG, |e| is_status(e, CONNECT_FAIL))
        .await;
    assert_eq!(failed["reason"], 2, "auth fail: {failed}");
    // the SDK retries every 3 s after a close; after a CONNACK refusal it does not
    let after = wrong.quiet_for(Duration::from_secs(4)).await;
    let retried = after
        .iter()
        .any(|e| is_status(e, CONNECTED) || is_status(e, CONNECTING));
    assert!(!retried, "no retry: {after:?}");
    // a primary login on the same device flag elsewhere kicks the SDK's connection
    let mut ann = Sdk::start().await;
    ann.order(json!({"op": "connect", "addr": s.ws, "uid": "ann", "token": "right"}))
        .await;
    ann.wait("connected", LONG, |e| is_status(e, CONNECTED))
        .await;
    let mut other = Client::open(&s.ws).await;
    let r = other.connect("ann", "right", 1).await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    let kicked = ann
        .wait("the kick", LONG, |e| is_status(e, CONNECT_KICK))
        .await;
    assert_eq!(kicked["reason"], 12, "{kicked}");
}
