//! The webhook engine's settings (`[webhook]`), with WuKongIM's own keys accepted as aliases so a
//! WuKongIM configuration carries over.

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::endpoint::Flavour;

/// WuKongIM's `webhook.*` keys and the settings they set (the loader renames them).
pub const WUKONGIM_KEYS: [(&str, &str); 6] = [
    ("httpAddr", "http_addr"),
    ("grpcAddr", "grpc_addr"),
    ("focusEvents", "focus_events"),
    ("msgNotifyEventPushInterval", "msg_notify_interval"),
    ("msgNotifyEventCountPerPush", "msg_notify_max_batch"),
    ("msgNotifyEventRetryMaxCount", "msg_notify_retry_max_count"),
];

/// `[webhook]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Delays of successive attempts of one delivery (the first is usually 0: at once). Svix's schedule.
    #[serde(with = "durations")]
    pub retry_schedule: Vec<Duration>,
    /// Share of each retry delay added or removed at random.
    pub retry_jitter: f64,
    /// msg.notify batches are flushed at this interval (WuKongIM's `msgNotifyEventPushInterval`).
    #[serde(with = "humantime_serde")]
    pub msg_notify_interval: Duration,
    /// ... or at this many messages (WuKongIM's `msgNotifyEventCountPerPush`).
    pub msg_notify_max_batch: usize,
    /// ... or when the body would pass this size.
    pub max_body_bytes: usize,
    /// user.onlinestatus batches are flushed at this interval (0 = at once, still an array).
    #[serde(with = "humantime_serde")]
    pub online_status_interval: Duration,
    /// Consecutive failures that open an endpoint's circuit breaker.
    pub breaker_failures: u32,
    /// First probe delay while the breaker is open (doubles up to `breaker_max_probe_delay`).
    #[serde(with = "humantime_serde")]
    pub breaker_probe_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub breaker_max_probe_delay: Duration,
    /// Failed attempts in a row after which `endpoint.failing` is logged (once per run; 0: never).
    pub failing_notice_after: u32,
    /// `delivery.exhausted`: the first dead letter is reported at once, the rest of this window together.
    #[serde(with = "humantime_serde")]
    pub exhausted_notice_window: Duration,
    /// An endpoint failing without a success for this long is disabled.
    #[serde(with = "humantime_serde")]
    pub disable_after: Duration,
    /// A disabled endpoint holds the event log (retention waits for its cursor) this long; then events
    /// it did not take may be removed, and it shows them as a gap when enabled again.
    #[serde(with = "humantime_serde")]
    pub hold_disabled: Duration,
    /// How long the attempt log keeps attempts.
    #[serde(with = "humantime_serde")]
    pub attempt_retention: Duration,
    /// How often attempt retention runs.
    #[serde(with = "humantime_serde")]
    pub attempt_prune_interval: Duration,
    /// Networks that deliveries may reach even if blocked by default (CIDR).
    pub allowed_networks: Vec<IpNet>,
    /// Networks deliveries may never reach (CIDR), on top of the default link-local/metadata ranges.
    pub blocked_networks: Vec<IpNet>,
    /// Only `https://` endpoint URLs are accepted (API and config file) and reached.
    pub https_only: bool,
    /// Every delivery goes through this HTTP(S) proxy (`http://user:password@host:port`), for egress
    /// control; the proxy then decides which addresses deliveries reach (the guard sees the proxy's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Events read from the log per step.
    pub read_batch: usize,
    /// Initial feature switches (the API changes them durably).
    pub features: crate::features::Features,
    /// Endpoints defined in the config file; read-only in the API.
    pub endpoints: Vec<ConfigEndpoint>,
    /// WuKongIM's single endpoint URL: becomes a read-only `wukongim` endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<String>,
    /// WuKongIM's event filter for `httpAddr` (WuKongIM names; empty = all).
    pub focus_events: Vec<String>,
    /// WuKongIM's `agent.webhook.httpAddr`: a second read-only `wukongim` endpoint, filtered to agent
    /// channels (channel types 11 and 12).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_http_addr: Option<String>,
    /// WuKongIM's gRPC webhook target: accepted so a WuKongIM configuration loads, but chathook delivers
    /// over HTTP only (an error when it is the only target, a warning otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_addr: Option<String>,
    /// WuKongIM's retry cap for msg.notify: accepted and ignored with a warning (chathook never drops a
    /// delivery: it retries on `retry_schedule`, then dead-letters it for replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_notify_retry_max_count: Option<u32>,
    /// Tencent Cloud Chat's SDKAppID, named in every tencent-flavour request; the server sets it from
    /// `tencent.sdk_app_id` (not a `webhook.*` key).
    #[serde(skip)]
    pub tencent_sdk_app_id: u64,
    /// Relay mode's settings; the server sets them from `[relay]` (not `webhook.*` keys).
    #[serde(skip)]
    pub relay: RelayConfig,
    /// The API's own base URL (`http://<api_addr>`), which ingest URLs fall back to.
    #[serde(skip)]
    pub api_base_url: String,
}

/// `[[webhook.endpoints]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigEndpoint {
    pub url: String,
    #[serde(default = "default_flavour")]
    pub flavour: Flavour,
    /// Event names (native, or WuKongIM's for the wukongim flavour); empty = none.
    #[serde(default)]
    pub events: Vec<String>,
    /// `whsec_...`; derived from the admin key and the URL when not given, so it is stable across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default)]
    pub description: String,
    /// The tencent flavour's callback token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_token: Option<String>,
    /// Which messages, channels and users it takes (empty lists: all).
    #[serde(default, skip_serializing_if = "crate::filters::Filters::is_empty")]
    pub filters: crate::filters::Filters,
}

fn default_flavour() -> Flavour {
    Flavour::Wukongim
}

impl Default for WebhookConfig {
    fn default() -> Self {
        let s = Duration::from_secs;
        WebhookConfig {
            retry_schedule: vec![
                s(0),
                s(5),
                s(300),
                s(1800),
                s(7200),
                s(18000),
                s(36000),
                s(36000),
            ],
            retry_jitter: 0.2,
            msg_notify_interval: Duration::from_millis(500),
            msg_notify_max_batch: 100,
            max_body_bytes: 1024 * 1024,
            online_status_interval: Duration::ZERO,
            breaker_failures: 10,
            breaker_probe_delay: s(1),
            breaker_max_probe_delay: s(60),
            failing_notice_after: 4,
            exhausted_notice_window: s(300),
            disable_after: s(5 * 24 * 3600),
            hold_disabled: s(7 * 24 * 3600),
            attempt_retention: s(7 * 24 * 3600),
            attempt_prune_interval: s(60),
            allowed_networks: Vec::new(),
            blocked_networks: Vec::new(),
            https_only: false,
            proxy: None,
            read_batch: 1000,
            features: Default::default(),
            endpoints: Vec::new(),
            http_addr: None,
            agent_http_addr: None,
            focus_events: Vec::new(),
            grpc_addr: None,
            msg_notify_retry_max_count: None,
            tencent_sdk_app_id: 0,
            relay: Default::default(),
            api_base_url: String::new(),
        }
    }
}

impl WebhookConfig {
    /// Checks what serde cannot; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_schedule.is_empty() {
            return Err("webhook.retry_schedule: must hold at least one duration".into());
        }
        if !(0.0..=1.0).contains(&self.retry_jitter) {
            return Err("webhook.retry_jitter: must be between 0 and 1".into());
        }
        for (key, v) in [
            ("webhook.msg_notify_max_batch", self.msg_notify_max_batch),
            ("webhook.max_body_bytes", self.max_body_bytes),
            ("webhook.read_batch", self.read_batch),
            ("webhook.breaker_failures", self.breaker_failures as usize),
        ] {
            if v == 0 {
                return Err(format!("{key}: must be greater than 0"));
            }
        }
        if self.relay.refused_notice_window.is_zero() {
            return Err("relay.refused_notice_window: must be greater than 0".into());
        }
        if self.exhausted_notice_window.is_zero() {
            return Err("webhook.exhausted_notice_window: must be greater than 0".into());
        }
        if self.attempt_prune_interval.is_zero() {
            return Err("webhook.attempt_prune_interval: must be greater than 0".into());
        }
        if self.msg_notify_interval.is_zero() {
            return Err("webhook.msg_notify_interval: must be greater than 0".into());
        }
        if let Some(proxy) = &self.proxy {
            let scheme = url::Url::parse(proxy).map(|u| u.scheme().to_string());
            if !matches!(scheme.as_deref(), Ok("http" | "https")) {
                return Err("webhook.proxy: must be an http:// or https:// URL".into());
            }
        }
        if self.https_only {
            let http = self
                .endpoints
                .iter()
                .map(|e| e.url.as_str())
                .chain(self.http_addr.as_deref())
                .chain(self.agent_http_addr.as_deref())
                .find(|url| !url.to_ascii_lowercase().starts_with("https://"));
            if let Some(url) = http {
                return Err(format!(
                    "webhook.https_only: the endpoint URL {url} is not https://"
                ));
            }
        }
        if self.grpc_addr.is_some() && self.http_addr.is_none() && self.endpoints.is_empty() {
            return Err("webhook.grpcAddr: chathook does not deliver webhooks over gRPC; set \
                        webhook.httpAddr (WuKongIM's HTTP webhook) or a [[webhook.endpoints]] entry"
                .into());
        }
        Ok(())
    }

    /// Settings that are accepted but change nothing, each with why (logged at start).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.grpc_addr.is_some() {
            out.push(
                "webhook.grpcAddr is ignored: chathook delivers webhooks over HTTP only \
                 (webhook.httpAddr and the endpoints)"
                    .to_string(),
            );
        }
        if self.msg_notify_retry_max_count.is_some() {
            out.push(
                "webhook.msgNotifyEventRetryMaxCount is ignored: chathook never drops a delivery; \
                 it retries on webhook.retry_schedule, then dead-letters it for replay"
                    .to_string(),
            );
        }
        out
    }
}

/// A list of humantime durations (`["0s", "5s", "5m"]`).
mod durations {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            list.iter()
                .map(|d| humantime_serde::re::humantime::format_duration(*d).to_string()),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        raw.iter()
            .map(|t| {
                humantime_serde::re::humantime::parse_duration(t).map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

/// `[relay]`: relay mode's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Relay ingest on its own listener (only the ingest routes and `/health`), so that the admin API
    /// can stay private; unset, ingest is served on the API's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<std::net::SocketAddr>,
    /// The base URL ingest URLs are built on (as the sending server reaches chathook); the relay's
    /// (or else the API's) own address when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// How long a source's message ids are remembered to leave out re-sent messages (WuKongIM merges
    /// a failed `msg.notify` batch into later ones).
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// How long a rotated-out ingest URL still works.
    #[serde(with = "humantime_serde")]
    pub rotation_grace: Duration,
    /// A source refusing at least this many requests in `refused_notice_window` is reported as
    /// `relay.refused` (0: never).
    pub refused_notice_after: u64,
    #[serde(with = "humantime_serde")]
    pub refused_notice_window: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            addr: None,
            public_url: None,
            dedup_window: Duration::from_secs(24 * 3600),
            rotation_grace: Duration::from_secs(24 * 3600),
            refused_notice_after: 10,
            refused_notice_window: Duration::from_secs(60),
        }
    }
}
