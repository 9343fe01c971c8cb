//! The HTTP side of delivery: one pooled client (keep-alive, HTTP/1.1 and HTTP/2, TLS with the system's
//! roots, no redirects), the network guard (`guard`) checked on every connect, signing, timeouts, and a bounded
//! read of the response.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};

use crate::guard::{GuardedResolver, NetworkGuard};
use crate::signing;

/// Largest part of a response body that is read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Part of the response body kept in the attempt log.
pub const LOGGED_RESPONSE_BYTES: usize = 1024;

/// What one attempt gave.
#[derive(Debug, Clone, Default)]
pub struct AttemptResult {
    pub success: bool,
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: String,
    pub response: String,
    /// `Retry-After` on a 429 or 503.
    pub retry_after: Option<Duration>,
    /// 410 Gone: the endpoint is to be disabled.
    pub gone: bool,
    /// The answer's body (at most 64 KiB).
    pub body: Vec<u8>,
}

/// The shared HTTP client.
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    guard: Arc<NetworkGuard>,
}

/// One request to make.
pub struct Request<'a> {
    pub url: &'a str,
    pub query: &'a str,
    pub delivery_id: &'a str,
    pub body: bytes_body::Body,
    pub secrets: Vec<&'a str>,
    pub timeout: Duration,
    /// Tencent's rules, for the tencent flavour.
    pub tencent: Option<TencentRules<'a>>,
}

/// Tencent Cloud Chat's rules for a callback: with a token, `&Sign=..&RequestTime=..` are added to the
/// query at each attempt; with `error_code`, success is HTTP 200 with a JSON body whose `ErrorCode` is
/// 0 (a before-send hook reads the code itself).
#[derive(Debug, Clone, Copy)]
pub struct TencentRules<'a> {
    pub sign_token: Option<&'a str>,
    pub error_code: bool,
}

pub mod bytes_body {
    /// A body shared between attempts without copying.
    pub type Body = std::sync::Arc<[u8]>;
}

impl Deliverer {
    pub fn new(guard: NetworkGuard) -> Result<Self, reqwest::Error> {
        let guard = Arc::new(guard);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("chathook/", env!("CARGO_PKG_VERSION"))),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .build()?;
        Ok(Deliverer { client, guard })
    }

    /// Sends one attempt, signed with every given secret.
    pub async fn send(&self, req: Request<'_>) -> AttemptResult {
        let started = Instant::now();
        let mut result = self.send_inner(req).await;
        result.latency = started.elapsed();
        result
    }

    async fn send_inner(&self, req: Request<'_>) -> AttemptResult {
        let mut url = match url::Url::parse(req.url) {
            Ok(u) => u,
            Err(e) => return failed(format!("bad URL: {e}")),
        };
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let signed_query;
        let query = match req.tencent.and_then(|t| t.sign_token) {
            Some(token) => {
                let sign = signing::tencent_sign(token, timestamp);
                signed_query = format!("{}&Sign={sign}&RequestTime={timestamp}", req.query);
                signed_query.as_str()
            }
            None => req.query,
        };
        if !query.is_empty() {
            url.set_query(Some(query));
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal {
            if !self.guard.permits(ip) {
                return failed(format!(
                    "{ip} is in a blocked network (webhook.allowed_networks)"
                ));
            }
        }
        let signature =
            signing::signature_header(&req.secrets, req.delivery_id, timestamp, &req.body);
        let sent = self
            .client
            .post(url)
            .timeout(req.timeout)
            .header("webhook-id", req.delivery_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(reqwest::Body::from(bytes::Bytes::from_owner(ArcBytes(
                req.body,
            ))))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                return failed(format!("{what}: {}", error_chain(&e)));
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        let read = tokio::time::timeout(req.timeout, async {
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else { break };
                let room = MAX_RESPONSE_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_RESPONSE_BYTES {
                    break;
                }
            }
        })
        .await;
        let mut logged = &body[..body.len().min(LOGGED_RESPONSE_BYTES)];
        while std::str::from_utf8(logged).is_err() && !logged.is_empty() {
            logged = &logged[..logged.len() - 1];
        }
        let tencent_codes = req.tencent.is_some_and(|t| t.error_code);
        let refused = match (tencent_codes, status.as_u16(), read.is_ok()) {
            (true, 200, true) => tencent_refusal(&body),
            _ => None,
        };
        let success = match req.tencent {
            Some(_) => status.as_u16() == 200 && read.is_ok() && refused.is_none(),
            None => status.is_success() && read.is_ok(),
        };
        AttemptResult {
            success,
            status: Some(status.as_u16()),
            latency: Duration::ZERO,
            error: if success {
                String::new()
            } else if read.is_err() {
                "timed out reading the response".into()
            } else if let Some(why) = refused {
                why
            } else {
                format!("HTTP {}", status.as_u16())
            },
            response: String::from_utf8_lossy(logged).into_owned(),
            retry_after: match status.as_u16() {
                429 | 503 => retry_after,
                _ => None,
            },
            gone: status.as_u16() == 410,
            body,
        }
    }
}

/// Why a Tencent callback's HTTP 200 answer is not a success: not JSON, or an `ErrorCode` other than 0.
fn tencent_refusal(body: &[u8]) -> Option<String> {
    let answer = serde_json::from_slice::<serde_json::Value>(body).ok();
    match answer.as_ref().map(|a| a.get("ErrorCode")) {
        None => Some("the answer is not JSON (Tencent's callbacks need {\"ErrorCode\":0})".into()),
        Some(Some(code)) if code.as_i64() == Some(0) => None,
        Some(code) => Some(format!(
            "ErrorCode {} ({})",
            code.map_or("missing".into(), |c| c.to_string()),
            answer
                .as_ref()
                .and_then(|a| a.get("ErrorInfo"))
                .and_then(|i| i.as_str())
                .unwrap_or_default()
        )),
    }
}

struct ArcBytes(Arc<[u8]>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn failed(error: String) -> AttemptResult {
    AttemptResult {
        error,
        ..Default::default()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
