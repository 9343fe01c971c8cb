//! Test harness: a server on port 0 with a temporary data dir, a REST helper and a JSON-RPC client.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use chathook::{Config, Server};
use chathook_events::LoggedEvent;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const ADMIN: &str = "test-admin-key-123";
/// The secrets key of the tests' servers (nodes of one cluster must share one).
pub const SECRETS_KEY: &str = "Y2hhdGhvb2stdGVzdC1zZWNyZXRzLWtleS0wMDAwMDA=";

pub struct TestServer {
    pub server: Option<Server>,
    pub api: String,
    pub ws: String,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    http: reqwest::Client,
}

/// A config for tests: a fresh data dir, the test admin key.
pub fn test_config(dir: &Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        admin_key: Some(ADMIN.into()),
        secrets: chathook::config::SecretsConfig {
            key: Some(SECRETS_KEY.into()),
            previous_keys: Vec::new(),
        },
        ..Config::default()
    }
}

/// Starts a server that must refuse to start; its error with every cause, one line.
pub async fn start_refused(config: Config) -> String {
    let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
    match Server::start(config, api, ws).await {
        Ok(_) => panic!("the server started"),
        Err(e) => format!("{e:#}"),
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> TestServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_in(&dir, tune).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on an existing data dir (for restarts).
    pub async fn start_in(dir: &Path, tune: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = test_config(dir);
        tune(&mut config);
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_addr = api.local_addr().unwrap();
        let ws_addr = ws.local_addr().unwrap();
        let server = Server::start(config, api, ws).await.expect("server starts");
        TestServer {
            server: Some(server),
            api: format!("http://{api_addr}"),
            ws: format!("ws://{ws_addr}"),
            dir: dir.to_path_buf(),
            _tmp: None,
            http: reqwest::Client::new(),
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// Graceful stop; keeps the data dir.
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    /// Stops and starts again on the same data dir.
    pub async fn restart(mut self, tune: impl FnOnce(&mut Config)) -> TestServer {
        self.stop().await;
        let tmp = self._tmp.take();
        let mut s = Self::start_in(&self.dir, tune).await;
        s._tmp = tmp;
        s
    }

    /// POSTs with the admin key and asserts WuKongIM's plain `{"status":200}` answer.
    pub async fn post_ok(&self, path: &str, body: Value) {
        let (st, reply) = self.post(path, body.clone()).await;
        assert_eq!(
            (st, &reply),
            (200, &json!({"status": 200})),
            "{path} {body}"
        );
    }

    /// POST with the admin key; returns the status and the JSON body (Null when not JSON).
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body), Some(ADMIN)).await
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{}", self.api, path));
        if let Some(k) = key {
            req = req.header("token", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("http");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn token(&self, uid: &str, token: &str, flag: u8, level: u8) {
        let (st, body) = self
            .post(
                "/user/token",
                json!({"uid": uid, "token": token, "device_flag": flag, "device_level": level}),
            )
            .await;
        assert_eq!(st, 200, "{body}");
    }

    /// Registers a token and connects.
    /// Logs in a secondary device (`device_level` 0).
    pub async fn login(&self, uid: &str, flag: u8) -> Client {
        self.login_at(uid, flag, 0).await
    }

    /// Logs in a primary device (`device_level` 1): only these count as online for `msg.offline`.
    pub async fn login_primary(&self, uid: &str, flag: u8) -> Client {
        self.login_at(uid, flag, 1).await
    }

    async fn login_at(&self, uid: &str, flag: u8, level: u8) -> Client {
        self.token(uid, &format!("tok-{uid}-{flag}"), flag, level)
            .await;
        let mut c = Client::open(&self.ws).await;
        let r = c.connect(uid, &format!("tok-{uid}-{flag}"), flag).await;
        assert_eq!(r["result"]["reasonCode"], 1, "{r}");
        c
    }

    pub async fn group(&self, id: &str, members: &[&str]) {
        let (st, body) = self
            .post(
                "/channel",
                json!({"channel_id": id, "channel_type": 2, "subscribers": members}),
            )
            .await;
        assert_eq!(st, 200, "{body}");
    }

    pub async fn rest_send(
        &self,
        from: &str,
        channel: &str,
        channel_type: u8,
        text: &str,
    ) -> (u16, Value) {
        self.post(
            "/message/send",
            json!({"from_uid": from, "channel_id": channel, "channel_type": channel_type,
                   "payload": b64(&json!({"type": 1, "content": text}).to_string())}),
        )
        .await
    }

    pub async fn sync(
        &self,
        login: &str,
        channel: &str,
        channel_type: u8,
        (start, end): (u64, u64),
        limit: u64,
        pull: u8,
    ) -> Value {
        let (st, body) = self
            .post(
                "/channel/messagesync",
                json!({"login_uid": login, "channel_id": channel, "channel_type": channel_type,
                       "start_message_seq": start, "end_message_seq": end, "limit": limit, "pull_mode": pull}),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        assert!(
            body.get("status").is_none(),
            "messagesync answers bare: {body}"
        );
        body
    }

    /// GETs `path` until `pred` holds on the JSON answer; returns it (panics after 5 s).
    pub async fn poll(&self, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + LONG;
        loop {
            let (_, body) = self.call("GET", path, None, Some(ADMIN)).await;
            if pred(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET {path} never matched: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.api))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Every event in the log so far.
    pub async fn events(&self) -> Vec<LoggedEvent> {
        self.server().store().read_after(0, 100_000).await.unwrap()
    }

    /// Waits until the log holds an event matching `pred`.
    pub async fn wait_event(&self, what: &str, pred: impl Fn(&LoggedEvent) -> bool) -> LoggedEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(e) = self.events().await.into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(tokio::time::Instant::now() < deadline, "no event: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// POST with the admin key to a server given by its API base URL (for spawned tasks and child
/// processes, which hold no `TestServer`); the JSON answer.
pub async fn admin_post(api: &str, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{api}{path}"))
        .header("token", ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The `message_seq`s of a `/channel/messagesync` page, in page order.
pub fn seqs(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .expect("a sync page has messages")
        .iter()
        .map(|m| m["message_seq"].as_u64().expect("message_seq is a number"))
        .collect()
}

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A `recv` payload (standard base64 on the wire) as the JSON it carries.
pub fn payload_json(payload: &Value) -> Value {
    let text = payload.as_str().expect("a recv payload is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("standard base64");
    serde_json::from_slice(&bytes).expect("the payload is JSON")
}

/// True for WuKongIM's answer to `ping`: a plain response with an empty result and no method.
pub fn is_pong(frame: &Value) -> bool {
    frame.get("method").is_none() && frame["result"] == json!({}) && frame["id"].is_string()
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WuKongIM JSON-RPC client.
pub struct Client {
    pub ws: Ws,
    next_id: u64,
    /// Frames that arrived while waiting for something else.
    pub inbox: Vec<Value>,
    /// Speaks JSON-RPC in binary WebSocket frames instead of text frames.
    pub binary: bool,
    /// Frames read whose kind (text or binary) differed from the client's.
    pub other_kind_frames: usize,
}

/// How a connection ended, as the client saw it.
#[derive(Debug)]
pub struct Closed {
    pub disconnect: Option<Value>,
    pub code: Option<CloseCode>,
    pub reason: String,
}

impl Client {
    pub async fn open(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Client::of(ws)
    }

    fn of(ws: Ws) -> Client {
        Client {
            ws,
            next_id: 0,
            inbox: Vec::new(),
            binary: false,
            other_kind_frames: 0,
        }
    }

    /// A client whose connection comes from the loopback address `from` (127.0.0.2, ...).
    pub async fn open_from(url: &str, from: std::net::IpAddr) -> Client {
        let host = url.trim_start_matches("ws://");
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
        let tcp = socket
            .connect(host.parse().expect("ws://ip:port"))
            .await
            .unwrap();
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("ws connect");
        Client::of(ws)
    }

    /// A client that sends its JSON-RPC frames as binary WebSocket frames.
    pub async fn open_binary(url: &str) -> Client {
        Client {
            binary: true,
            ..Client::open(url).await
        }
    }

    pub async fn connect(&mut self, uid: &str, token: &str, flag: u8) -> Value {
        self.request(
            "connect",
            json!({"uid": uid, "token": token, "deviceFlag": flag}),
        )
        .await
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        let frame = if self.binary {
            Message::Binary(text.into_bytes().into())
        } else {
            Message::Text(text.into())
        };
        self.ws.send(frame).await.expect("ws send");
    }

    /// Sends a request and waits for the response with its id.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send_text(
            json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id}).to_string(),
        )
        .await;
        self.wait_for(|f| f["id"] == id.as_str())
            .await
            .expect("a response")
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send_text(json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string())
            .await;
    }

    pub async fn send_msg(
        &mut self,
        channel: &str,
        channel_type: u8,
        client_msg_no: &str,
        content: &str,
    ) -> Value {
        self.request(
            "send",
            json!({"clientMsgNo": client_msg_no, "channelId": channel, "channelType": channel_type,
                   "payload": {"type": 1, "content": content}}),
        )
        .await
    }

    /// Sends a text message without waiting for its result; returns the request id.
    pub async fn send_msg_nowait(
        &mut self,
        channel: &str,
        channel_type: u8,
        client_msg_no: &str,
        content: &str,
    ) -> String {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send_text(
            json!({"jsonrpc": "2.0", "method": "send", "id": id,
                   "params": {"clientMsgNo": client_msg_no, "channelId": channel, "channelType": channel_type,
                              "payload": {"type": 1, "content": content}}})
            .to_string(),
        )
        .await;
        id
    }

    /// The response to the request `id`.
    pub async fn wait_result(&mut self, id: &str) -> Value {
        if let Some(i) = self.inbox.iter().position(|f| f["id"] == id) {
            return self.inbox.remove(i);
        }
        self.wait_for(|f| f["id"] == id).await.expect("a response")
    }

    /// The next text frame (from the inbox first), or None on close or after `timeout`.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<Value> {
        if !self.inbox.is_empty() {
            return Some(self.inbox.remove(0));
        }
        self.read(timeout).await
    }

    async fn read(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    self.other_kind_frames += usize::from(self.binary);
                    return serde_json::from_str(&t).ok();
                }
                Ok(Some(Ok(Message::Binary(b)))) => {
                    self.other_kind_frames += usize::from(!self.binary);
                    return serde_json::from_slice(&b).ok();
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                _ => return None,
            }
        }
    }

    /// Waits for a frame matching `pred`, keeping the others in the inbox.
    pub async fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(i) = self.inbox.iter().position(&pred) {
            return Some(self.inbox.remove(i));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.read(left).await?;
            if pred(&frame) {
                return Some(frame);
            }
            self.inbox.push(frame);
        }
    }

    /// The next `recv` notification within `timeout`, acknowledged when `ack`.
    pub async fn recv(&mut self, timeout: Duration, ack: bool) -> Option<Value> {
        let frame = if let Some(i) = self.inbox.iter().position(|f| f["method"] == "recv") {
            Some(self.inbox.remove(i))
        } else {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match self.read(left).await {
                    None => break None,
                    Some(f) if f["method"] == "recv" => break Some(f),
                    Some(f) => self.inbox.push(f),
                }
            }
        }?;
        if ack {
            let p = &frame["params"];
            self.notify(
                "recvack",
                json!({"messageId": p["messageId"], "messageSeq": p["messageSeq"]}),
            )
            .await;
        }
        Some(frame)
    }

    /// Reads until the server closes; returns the disconnect notification and the close frame.
    pub async fn closed(&mut self, timeout: Duration) -> Closed {
        let mut disconnect = self
            .inbox
            .iter()
            .find(|f| f["method"] == "disconnect")
            .cloned();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v["method"] == "disconnect" {
                        disconnect = Some(v);
                    }
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Closed {
                        disconnect,
                        code: frame.as_ref().map(|f| f.code),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    }
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => {
                    return Closed {
                        disconnect,
                        code: None,
                        reason: String::new(),
                    }
                }
                Err(_) => panic!("the server did not close the connection within {timeout:?}"),
            }
        }
    }
}

pub const SHORT: Duration = Duration::from_millis(300);
pub const LONG: Duration = Duration::from_secs(5);

/// What a test receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Status(u16),
    /// Status with `Retry-After: secs`.
    RetryAfter(u16, u64),
    /// Never answers (until the client gives up).
    Hang,
    /// Answers 200 after this long.
    Delay(Duration),
    /// Answers with this status and body (JSON).
    Answer(u16, &'static str),
    /// Answers 200 with the body (JSON), after the delay when the request's body holds the text.
    SlowWhen(&'static str, Duration, &'static str),
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub query: String,
    pub headers: std::collections::HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn id(&self) -> String {
        self.headers.get("webhook-id").cloned().unwrap_or_default()
    }
    pub fn event(&self) -> String {
        self.query
            .strip_prefix("event=")
            .unwrap_or_default()
            .to_string()
    }
}

#[derive(Default)]
struct ReceiverState {
    requests: std::sync::Mutex<Vec<Recorded>>,
    mode: std::sync::Mutex<Option<Mode>>,
}

/// A real HTTP receiver on loopback that records every request.
pub struct Receiver {
    pub url: String,
    state: std::sync::Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on(0).await
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url
            .split(':')
            .nth(2)
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Starts a receiver on a given port (0 = any).
    pub async fn start_on(port: u16) -> Receiver {
        use axum::extract::{RawQuery, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        let state = std::sync::Arc::new(ReceiverState::default());
        async fn handle(
            State(state): State<std::sync::Arc<ReceiverState>>,
            RawQuery(query): RawQuery,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            let mode = state.mode.lock().unwrap().unwrap_or(Mode::Ok);
            state.requests.lock().unwrap().push(Recorded {
                query: query.unwrap_or_default(),
                headers: headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_string(),
                            v.to_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
                body: body.to_vec(),
                at: std::time::Instant::now(),
            });
            match mode {
                Mode::Ok => (StatusCode::OK, "ok").into_response(),
                Mode::Status(s) => (StatusCode::from_u16(s).unwrap(), "no").into_response(),
                Mode::RetryAfter(s, secs) => (
                    StatusCode::from_u16(s).unwrap(),
                    [("retry-after", secs.to_string())],
                    "later",
                )
                    .into_response(),
                Mode::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    StatusCode::OK.into_response()
                }
                Mode::Delay(d) => {
                    tokio::time::sleep(d).await;
                    (StatusCode::OK, "ok").into_response()
                }
                Mode::Answer(s, body) => (
                    StatusCode::from_u16(s).unwrap(),
                    [("content-type", "application/json")],
                    body,
                )
                    .into_response(),
                Mode::SlowWhen(needle, delay, answer) => {
                    // this request's own body (another may have been recorded since)
                    if String::from_utf8_lossy(&body).contains(needle) {
                        tokio::time::sleep(delay).await;
                    }
                    (
                        StatusCode::OK,
                        [("content-type", "application/json")],
                        answer,
                    )
                        .into_response()
                }
            }
        }
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, state, task }
    }

    pub fn set(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = Some(mode);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn by_event(&self, event: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.event() == event)
            .collect()
    }

    /// Waits until `pred` holds on the requests (panics after `timeout`).
    pub async fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&[Recorded]) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.requests()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "receiver never saw: {what} ({} requests)",
                self.requests().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl TestServer {
    /// Creates a webhook endpoint; returns its JSON (with the secret).
    pub async fn endpoint(&self, body: Value) -> Value {
        let (st, v) = self.post("/v1/webhooks/endpoints", body).await;
        assert_eq!(st, 201, "{v}");
        v
    }
}

/// Message ids carried by msg.notify requests.
pub fn notify_ids(reqs: &[Recorded]) -> Vec<i64> {
    reqs.iter()
        .filter(|r| r.event() == "msg.notify")
        .flat_map(|r| r.json().as_array().cloned().unwrap_or_default())
        .filter_map(|m| m["message_id"].as_i64())
        .collect()
}

/// The real binary, running.
pub struct Proc {
    pub child: std::process::Child,
    pub api: String,
    pub ws: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real binary on `dir` and waits until it answers.
pub async fn spawn_binary(dir: &std::path::Path) -> Proc {
    spawn_binary_with(dir, &[]).await
}

/// Starts the real binary on `dir` with more settings (`CHATHOOK_*` variables).
pub async fn spawn_binary_with(dir: &std::path::Path, settings: &[(&str, String)]) -> Proc {
    spawn_binary_under(&[], dir, settings).await
}

/// Starts the real binary through a wrapper command (`prlimit --nofile=...`, empty for none).
pub async fn spawn_binary_under(
    wrapper: &[&str],
    dir: &std::path::Path,
    settings: &[(&str, String)],
) -> Proc {
    launch(wrapper, dir, settings, None).await
}

/// Starts the real binary with its log (warnings and above) written to `log`.
pub async fn spawn_binary_logging(
    dir: &std::path::Path,
    log: &std::path::Path,
    settings: &[(&str, String)],
) -> Proc {
    launch(&[], dir, settings, Some(log)).await
}

async fn launch(
    wrapper: &[&str],
    dir: &std::path::Path,
    settings: &[(&str, String)],
    log: Option<&std::path::Path>,
) -> Proc {
    let (api_port, ws_port) = (free_port(), free_port());
    let binary = env!("CARGO_BIN_EXE_chathook");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(binary);
            c
        }
        None => std::process::Command::new(binary),
    };
    // The test's settings last: they may replace these.
    let mut child = command
        .env("CHATHOOK_ADMIN_KEY", ADMIN)
        .env("CHATHOOK_SECRETS__KEY", SECRETS_KEY)
        .env("RUST_LOG", "warn")
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CHATHOOK_API_ADDR", format!("127.0.0.1:{api_port}"))
        .env("CHATHOOK_WS_ADDR", format!("127.0.0.1:{ws_port}"))
        .env("CHATHOOK_DATA_DIR", dir)
        .stdout(match log {
            Some(path) => std::fs::File::create(path).expect("the log file").into(),
            None => std::process::Stdio::null(),
        })
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn chathook");
    let api = format!("http://127.0.0.1:{api_port}");
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("{api}/health")).await {
            if r.status() == 200 {
                return Proc {
                    child,
                    api,
                    ws: format!("ws://127.0.0.1:{ws_port}"),
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("chathook did not start");
}

/// Sends `sig` (`-TERM`, `-KILL`...) to a child.
pub fn signal(child: &std::process::Child, sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(sig)
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
