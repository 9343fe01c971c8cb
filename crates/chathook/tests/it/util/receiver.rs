//! A real HTTP receiver for webhooks on loopback, answering as the test sets and recording every request.

use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;

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
        let pred = &pred;
        let what = format!("the receiver to see {what}");
        super::eventually(&what, timeout, || async move {
            let requests = self.requests();
            if pred(&requests) {
                Ok(())
            } else {
                Err(format!("{} requests", requests.len()))
            }
        })
        .await
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
