//! The HTTP side of delivery: one pooled client (keep-alive, HTTP/1.1 and HTTP/2, TLS with the system's
//! roots, no redirects, through `webhook.proxy` when set, refusing `http://` under `webhook.https_only`)
//! and one more per distinct TLS setting of an endpoint (client certificate, CA), the network guard
//! (`guard`) checked on every connect, signing, the receiver's headers, timeouts, and a bounded read of
//! the response.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};

use crate::guard::{GuardedResolver, NetworkGuard};
use crate::receiver_auth::{self, ClientTls, ReceiverAuth};
use crate::signing;

/// Largest part of a response body that is read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Part of the response body kept in the attempt log.
pub const LOGGED_RESPONSE_BYTES: usize = 1024;
/// The most clients kept for endpoints' TLS settings (all are dropped when it is reached).
const MAX_TLS_CLIENTS: usize = 256;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Whether an answer with `status` asks the sender to slow down (Standard Webhooks: 429, 502 and 504
/// mean throttle; 503 is the usual "busy").
pub fn is_throttling(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// What one attempt gave.
#[derive(Debug, Clone, Default)]
pub struct AttemptResult {
    pub success: bool,
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: String,
    pub response: String,
    /// `Retry-After` (seconds, at most an hour) on a throttling answer.
    pub retry_after: Option<Duration>,
    /// The answer asked to slow down ([`is_throttling`]).
    pub throttled: bool,
    /// 410 Gone: the endpoint is to be disabled.
    pub gone: bool,
    /// The answer's body (at most 64 KiB).
    pub body: Vec<u8>,
}

/// How the clients reach receivers (`webhook.proxy`, `webhook.https_only`).
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Every request goes through this HTTP(S) proxy (`http://user:pass@host:port`).
    pub proxy: Option<String>,
    /// Only `https://` URLs are reached.
    pub https_only: bool,
}

/// The shared HTTP client, and one per distinct TLS setting of an endpoint.
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    guard: Arc<NetworkGuard>,
    options: Arc<ClientOptions>,
    /// Clients for endpoints' TLS settings, by the SHA-256 of the PEM texts (at most
    /// [`MAX_TLS_CLIENTS`]; endpoints with the same settings share one, and its connections).
    tls_clients: Arc<Mutex<HashMap<[u8; 32], reqwest::Client>>>,
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
    /// The receiver's headers, credentials and TLS settings.
    pub auth: &'a ReceiverAuth,
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
    pub fn new(guard: NetworkGuard, options: ClientOptions) -> Result<Self, reqwest::Error> {
        let guard = Arc::new(guard);
        let client = builder(&guard, &options)?.build()?;
        Ok(Deliverer {
            client,
            guard,
            options: Arc::new(options),
            tls_clients: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The client for an endpoint with `tls` settings: built once per distinct setting.
    fn tls_client(&self, tls: &ClientTls) -> Result<reqwest::Client, String> {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        for pem in [&tls.client_cert, &tls.client_key, &tls.ca_cert] {
            let pem = pem.as_deref().unwrap_or_default();
            hash.update((pem.len() as u64).to_le_bytes());
            hash.update(pem.as_bytes());
        }
        let key: [u8; 32] = hash.finalize().into();
        let mut clients = self.tls_clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut b = builder(&self.guard, &self.options).map_err(|e| e.to_string())?;
        if tls.client_cert.is_some() {
            b = b.identity(receiver_auth::identity(tls)?);
        }
        if let Some(ca) = &tls.ca_cert {
            for root in reqwest::Certificate::from_pem_bundle(ca.as_bytes())
                .map_err(|e| format!("the CA does not parse: {e}"))?
            {
                b = b.add_root_certificate(root);
            }
        }
        let client = b.build().map_err(|e| error_chain(&e))?;
        if clients.len() >= MAX_TLS_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
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
        if self.options.https_only && url.scheme() != "https" {
            return failed("webhook.https_only: the URL is not https://".into());
        }
        let client = match &req.auth.tls {
            Some(tls) => match self.tls_client(tls) {
                Ok(c) => c,
                Err(e) => return failed(format!("the endpoint's TLS settings: {e}")),
            },
            None => self.client.clone(),
        };
        let signature =
            signing::signature_header(&req.secrets, req.delivery_id, timestamp, &req.body);
        let mut headers = HeaderMap::new();
        headers.extend(req.auth.request_headers());
        let sent = client
            .post(url)
            .headers(headers)
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
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
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
            retry_after: retry_after.filter(|_| is_throttling(status.as_u16())),
            throttled: is_throttling(status.as_u16()),
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

/// The settings every client shares: default headers, no redirects, pooled keep-alive connections, the
/// guarded resolver, and the proxy and `https_only` options.
fn builder(
    guard: &Arc<NetworkGuard>,
    options: &ClientOptions,
) -> Result<reqwest::ClientBuilder, reqwest::Error> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("chathook/", env!("CARGO_PKG_VERSION"))),
    );
    let mut b = reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(30))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .https_only(options.https_only)
        .dns_resolver(Arc::new(GuardedResolver(guard.clone())));
    if let Some(proxy) = &options.proxy {
        b = b.proxy(reqwest::Proxy::all(proxy)?);
    }
    Ok(b)
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

/// An error with its causes, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
