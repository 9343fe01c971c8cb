//! The server under test, in-process on ephemeral loopback ports with a temporary data dir, and its
//! REST helpers.

use std::path::{Path, PathBuf};

use base64::Engine;
use chathook::{Config, Server};
use chathook_events::LoggedEvent;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::*;

pub struct TestServer {
    pub server: Option<Server>,
    pub api: String,
    pub ws: String,
    /// The TCP gateway's `host:port` (empty when it is off).
    pub tcp: String,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    http: reqwest::Client,
}

/// A config for tests: a fresh data dir, the test admin key.
pub fn test_config(dir: &Path) -> Config {
    Config {
        gateway: chathook_im::GatewayConfig {
            tcp_addr: Some("127.0.0.1:0".into()),
            ..Default::default()
        },
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
        let tcp = server.tcp_addr().map(|a| a.to_string()).unwrap_or_default();
        TestServer {
            server: Some(server),
            api: format!("http://{api_addr}"),
            ws: format!("ws://{ws_addr}"),
            tcp,
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

    /// Registers a token and connects a binary-protocol client of `version` over WebSocket, encrypted
    /// as the SDKs are.
    pub async fn login_binary(&self, uid: &str, flag: u8, version: u8) -> BinClient {
        self.login_binary_on(Transport::Ws, uid, flag, version)
            .await
    }

    /// Where a client of `transport` connects.
    pub fn dial(&self, transport: Transport) -> Dial<'_> {
        match transport {
            Transport::Ws => Dial::Ws(&self.ws),
            Transport::Tcp => Dial::Tcp(&self.tcp),
        }
    }

    /// [`TestServer::login_binary`] over `transport`.
    pub async fn login_binary_on(
        &self,
        transport: Transport,
        uid: &str,
        flag: u8,
        version: u8,
    ) -> BinClient {
        let token = format!("tok-{uid}-{flag}");
        self.token(uid, &token, flag, 0).await;
        let c = BinClient::connect_to(self.dial(transport), uid, &token, flag, version, true).await;
        assert_eq!(c.connack.reason, 1, "{:?}", c.connack);
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
        let pred = &pred;
        eventually(&format!("GET {path} to match"), LONG, || async move {
            let (_, body) = self.call("GET", path, None, Some(ADMIN)).await;
            if pred(&body) {
                Ok(body)
            } else {
                Err(body.to_string())
            }
        })
        .await
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
        let pred = &pred;
        eventually(what, LONG, || async move {
            let events = self.events().await;
            let count = events.len();
            events
                .into_iter()
                .find(|e| pred(e))
                .ok_or_else(|| format!("{count} events, none matching"))
        })
        .await
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

/// `base` with the fields of `extra` added (or replaced): a request body and the part a case changes.
pub fn merged(base: Value, extra: &Value) -> Value {
    let mut out = base;
    if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    out
}

/// An error answer's `(field, code)`.
pub fn refusal(v: &Value) -> (Option<&str>, Option<&str>) {
    (v["error"]["field"].as_str(), v["error"]["code"].as_str())
}

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

impl TestServer {
    /// Creates a webhook endpoint; returns its JSON (with the secret).
    pub async fn endpoint(&self, body: Value) -> Value {
        let (st, v) = self.post("/v1/webhooks/endpoints", body).await;
        assert_eq!(st, 201, "{v}");
        v
    }
}
