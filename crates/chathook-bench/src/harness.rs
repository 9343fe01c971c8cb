//! What every scenario uses: the server binary on loopback with a temporary data dir, REST and
//! JSON-RPC helpers, a counting webhook receiver, percentiles.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

pub const ADMIN: &str = "bench-admin-key-0000";
/// The secrets key of the bench's servers on PostgreSQL (the nodes of a cluster share one).
pub const SECRETS_KEY: &str = "Y2hhdGhvb2stYmVuY2gtc2VjcmV0cy1rZXktMDAwMDA=";

pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// The release server: `CHATHOOK_BINARY`, or built next to this binary.
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Ok(b) = std::env::var("CHATHOOK_BINARY") {
        return Ok(PathBuf::from(b));
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-q", "-p", "chathook"])
        .status()
        .context("cargo build")?;
    if !status.success() {
        bail!("building the server failed");
    }
    Ok(std::env::current_exe()?.with_file_name("chathook"))
}

/// A running server process, killed on drop.
pub struct Server {
    pub child: Child,
    pub api: String,
    pub ws: String,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of the process whose `/proc/.../stat` is at `stat`, in microseconds
/// (counted in clock ticks of 10 ms: read it over runs of seconds). 0 when it cannot be read.
pub fn cpu_micros(stat: &str) -> u64 {
    std::fs::read_to_string(stat)
        .ok()
        .and_then(|s| {
            // The fields after the command name, which is in parentheses and may hold spaces.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks * 10_000)
        })
        .unwrap_or(0)
}

/// Two distinct free loopback ports (both held while choosing, so they cannot be the same).
pub fn free_ports() -> anyhow::Result<(u16, u16)> {
    let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// Starts the server with bench-friendly limits plus `env`, on a fresh data dir.
pub async fn start_server(bin: &Path, env: &[(&str, String)]) -> anyhow::Result<Server> {
    let tmp = tempfile::tempdir()?;
    let mut server = start_server_in(bin, tmp.path(), env).await?;
    server._tmp = Some(tmp);
    Ok(server)
}

/// With `--postgres`: the throwaway PostgreSQL every server of the run stores in, and the databases
/// made so far (one per data dir, so that a restart finds its own).
struct Shared {
    postgres: std::sync::Arc<chathook_testkit::Postgres>,
    databases: std::sync::Mutex<std::collections::HashMap<PathBuf, String>>,
}

static POSTGRES: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();

/// Runs every server of this run on PostgreSQL (a throwaway cluster, started now; flushing each
/// commit to disk when `fsync`).
pub fn use_postgres(fsync: bool) -> anyhow::Result<()> {
    let postgres = crate::services::postgres(fsync)?;
    let _ = POSTGRES.set(Shared {
        postgres,
        databases: Default::default(),
    });
    Ok(())
}

/// The PostgreSQL database of the server in `dir`, made on first use; `None` on the embedded store.
fn database_for(dir: &Path) -> anyhow::Result<Option<String>> {
    let Some(shared) = POSTGRES.get() else {
        return Ok(None);
    };
    let mut databases = shared
        .databases
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    if let Some(url) = databases.get(dir) {
        return Ok(Some(url.clone()));
    }
    let name = format!("bench{}", databases.len());
    let url = shared
        .postgres
        .database(&name)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    databases.insert(dir.to_path_buf(), url.clone());
    Ok(Some(url))
}

/// Starts the server on an existing data dir (for restarts).
pub async fn start_server_in(
    bin: &Path,
    dir: &Path,
    env: &[(&str, String)],
) -> anyhow::Result<Server> {
    let (api_port, ws_port) = free_ports()?;
    let mut cmd = Command::new(bin);
    // the bench's own setting, no server setting (the server would warn about `BINARY`)
    cmd.env_remove("CHATHOOK_BINARY");
    if let Some(url) = database_for(dir)? {
        cmd.env("CHATHOOK_STORAGE__BACKEND", "postgres")
            .env("CHATHOOK_SECRETS__KEY", SECRETS_KEY)
            .env("CHATHOOK_STORAGE__POSTGRES_URL", url)
            .env("CHATHOOK_STORAGE__POSTGRES_MAX_CONNECTIONS", "16");
    }
    cmd.env("CHATHOOK_API_ADDR", format!("127.0.0.1:{api_port}"))
        .env("CHATHOOK_WS_ADDR", format!("127.0.0.1:{ws_port}"))
        .env("CHATHOOK_DATA_DIR", dir)
        .env("CHATHOOK_ADMIN_KEY", ADMIN)
        .env("CHATHOOK_LIMITS__SENDS_PER_SEC", "0")
        .env("CHATHOOK_LIMITS__MAX_UNACKED", "10000000")
        .env("CHATHOOK_LIMITS__OUTBOUND_QUEUE", "65536")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let api = format!("http://127.0.0.1:{api_port}");
    for _ in 0..150 {
        if reqwest::get(format!("{api}/health"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Ok(Server {
                child,
                api,
                ws: format!("ws://127.0.0.1:{ws_port}"),
                _tmp: None,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("the server did not start")
}

impl Server {
    /// CPU time (user + system) the server process has used so far, in microseconds.
    pub fn cpu_micros(&self) -> u64 {
        cpu_micros(&format!("/proc/{}/stat", self.child.id()))
    }

    /// CPU time (user + system) the server's threads named `name` have used so far, in
    /// microseconds (the store's writer is `chathook-writer`).
    pub fn thread_cpu_micros(&self, name: &str) -> u64 {
        let tasks = format!("/proc/{}/task", self.child.id());
        let Ok(dir) = std::fs::read_dir(&tasks) else {
            return 0;
        };
        dir.flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
            .map(|t| cpu_micros(&t.path().join("stat").to_string_lossy()))
            .sum()
    }

    /// Resident memory of the server process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<u64>().ok())
                })
            })
            .map_or(0, |kb| kb * 1024)
    }
}

/// POST with the admin key; the JSON answer.
pub async fn post(
    http: &reqwest::Client,
    api: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    Ok(http
        .post(format!("{api}{path}"))
        .header("token", ADMIN)
        .json(&body)
        .send()
        .await?
        .json()
        .await?)
}

/// PATCH with the admin key; fails on an answer other than 2xx.
pub async fn patch(
    http: &reqwest::Client,
    api: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<()> {
    http.patch(format!("{api}{path}"))
        .header("token", ADMIN)
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// Registers `uid` with the token `uid` on device flag 0, as a primary device.
pub async fn token(http: &reqwest::Client, api: &str, uid: &str) -> anyhow::Result<()> {
    post(
        http,
        api,
        "/user/token",
        // A phone app's login: primary, so an online recipient is not also "offline" (msg.offline goes
        // to users without a primary connection, as in WuKongIM).
        json!({"uid": uid, "token": uid, "device_flag": 0, "device_level": 1}),
    )
    .await?;
    Ok(())
}

/// Opens a WebSocket (from `source` when given) and logs in as `uid` with the token `uid`.
pub async fn connect(ws: &str, uid: &str, source: Option<IpAddr>) -> anyhow::Result<Ws> {
    let addr: std::net::SocketAddr = ws.trim_start_matches("ws://").parse()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind((ip, 0).into())?;
    }
    let stream = socket.connect(addr).await?;
    // Small read buffers: the idle scenario holds tens of thousands of these in this process.
    let config =
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(ws, stream, Some(config)).await?;
    socket
        .send(Message::Text(
            json!({"method": "connect", "id": "c", "params": {"uid": uid, "token": uid, "deviceFlag": 0}})
                .to_string()
                .into(),
        ))
        .await?;
    let reply = socket.next().await.context("no connect reply")??;
    let v: Value = serde_json::from_str(reply.to_text()?)?;
    if v["result"]["reasonCode"] != 1 {
        bail!("connect refused: {v}");
    }
    Ok(socket)
}

/// The `p` percentile of sorted microseconds, in milliseconds.
pub fn percentile(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i] as f64 / 1000.0)
}

/// A loopback receiver that counts requests and the messages in msg.notify arrays, and optionally
/// answers after a delay.
pub struct Sink {
    pub url: String,
    pub requests: Arc<AtomicU64>,
    pub messages: Arc<AtomicU64>,
}

#[derive(Clone)]
struct SinkState {
    requests: Arc<AtomicU64>,
    messages: Arc<AtomicU64>,
    delay: Duration,
    /// The body it answers (JSON).
    answer: &'static str,
    /// Send-to-receive latencies (µs) of standard-flavour message.sent bodies whose payload is `{"t": µs}`.
    latencies: Option<Arc<std::sync::Mutex<Vec<u64>>>>,
    epoch: Instant,
    /// Message ids of standard-flavour message.sent bodies.
    ids: Option<Arc<std::sync::Mutex<std::collections::HashSet<i64>>>>,
}

/// What a sink records besides counts.
#[derive(Default)]
pub struct SinkOptions {
    pub delay: Duration,
    /// The JSON body answered (`"ok"` as text when unset).
    pub answer: Option<&'static str>,
    pub latencies: Option<Arc<std::sync::Mutex<Vec<u64>>>>,
    pub epoch: Option<Instant>,
    pub ids: Option<Arc<std::sync::Mutex<std::collections::HashSet<i64>>>>,
}

pub async fn start_sink() -> anyhow::Result<Sink> {
    start_sink_with(SinkOptions::default()).await
}

/// A sink that waits `delay` before answering and records latencies (against `epoch`) and ids.
pub async fn start_sink_with(options: SinkOptions) -> anyhow::Result<Sink> {
    use axum::extract::{RawQuery, State};
    async fn handle(
        State(s): State<SinkState>,
        RawQuery(q): RawQuery,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        s.requests.fetch_add(1, Ordering::Relaxed);
        if q.as_deref() == Some("event=msg.notify") {
            let n =
                serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body).map_or(0, |v| v.len());
            s.messages.fetch_add(n as u64, Ordering::Relaxed);
        }
        if let Some(ids) = &s.ids {
            let id = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["data"]["message_id"].as_i64());
            if let (Some(id), Ok(mut ids)) = (id, ids.lock()) {
                ids.insert(id);
            }
        }
        if let Some(lat) = &s.latencies {
            let sent = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                let payload = v["data"]["payload"].as_str()?.to_string();
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(payload)
                    .ok()?;
                serde_json::from_slice::<Value>(&bytes).ok()?["t"].as_u64()
            });
            if let (Some(t), Ok(mut l)) = (sent, lat.lock()) {
                l.push((s.epoch.elapsed().as_micros() as u64).saturating_sub(t));
            }
        }
        if !s.delay.is_zero() {
            tokio::time::sleep(s.delay).await;
        }
        if s.answer.is_empty() {
            return "ok".into_response();
        }
        ([("content-type", "application/json")], s.answer).into_response()
    }
    let state = SinkState {
        requests: Arc::new(AtomicU64::new(0)),
        messages: Arc::new(AtomicU64::new(0)),
        delay: options.delay,
        answer: options.answer.unwrap_or(""),
        latencies: options.latencies,
        epoch: options.epoch.unwrap_or_else(Instant::now),
        ids: options.ids,
    };
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Sink {
        url,
        requests: state.requests,
        messages: state.messages,
    })
}

/// Waits until `counter` rose by `target` (or `limit` passes); returns (rate per second, count).
pub async fn rate_until(
    counter: &AtomicU64,
    start_value: u64,
    target: u64,
    limit: Duration,
) -> (f64, u64) {
    let start = Instant::now();
    while counter.load(Ordering::Relaxed) - start_value < target && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = counter.load(Ordering::Relaxed) - start_value;
    (done as f64 / start.elapsed().as_secs_f64(), done)
}
