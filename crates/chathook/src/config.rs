//! The server's configuration: embedded defaults, then an optional file (chathook's TOML, or WuKongIM's
//! YAML `wk.yaml`, see `wukongim_config`), then WuKongIM's `WK_*` environment variables, then
//! `CHATHOOK_*` environment variables (nested keys joined by `__`), then command-line flags. Unknown
//! keys and bad values stop the start with a message naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chathook_http::listen::ListenConfig;
use chathook_http::throttle::ThrottleConfig;
use chathook_im::{ClusterConfig, GatewayConfig, Limits, MessagesConfig, RouteConfig};
use chathook_webhook::config::WUKONGIM_KEYS;
use chathook_webhook::WebhookConfig;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Top-level keys; environment variables naming anything else are ignored with a warning.
const TOP_LEVEL_KEYS: [&str; 20] = [
    "api_addr",
    "ws_addr",
    "listen",
    "data_dir",
    "admin_key",
    "log",
    "secrets",
    "auth",
    "node_id",
    "limits",
    "gateway",
    "messages",
    "route",
    "events",
    "store",
    "storage",
    "cluster",
    "webhook",
    "relay",
    "tencent",
];

/// Every setting of the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP API (WuKongIM's port 5001).
    pub api_addr: SocketAddr,
    /// WebSocket gateway, JSON-RPC and binary (WuKongIM's port 5200); the TCP gateway's address is
    /// `gateway.tcp_addr`.
    pub ws_addr: SocketAddr,
    /// Timeouts and connection caps of both listeners.
    pub listen: ListenConfig,
    /// Where the embedded store (and a generated admin key) live.
    pub data_dir: PathBuf,
    /// The key server API calls must carry; generated into `data_dir/admin.key` when unset.
    pub admin_key: Option<String>,
    /// How the server writes its log.
    pub log: LogConfig,
    /// The key that seals secrets at rest (webhook secrets, sign tokens) and keys token hashes.
    pub secrets: SecretsConfig,
    /// WuKongIM's open mode (off by default).
    pub auth: AuthConfig,
    /// Node id encoded in message ids (0..=1023).
    pub node_id: u16,
    pub limits: Limits,
    pub gateway: GatewayConfig,
    pub messages: MessagesConfig,
    /// What `GET /route` tells clients to dial.
    pub route: RouteConfig,
    pub events: EventsConfig,
    pub store: StoreConfig,
    /// Which database holds everything durable: the embedded SQLite file (one node) or PostgreSQL.
    pub storage: StorageConfig,
    /// Several nodes: the NATS server they share, heartbeats, lost nodes, webhook leases.
    pub cluster: ClusterConfig,
    pub webhook: WebhookConfig,
    /// Relay mode: other IM servers' webhooks in (ingest URLs, de-duplication window).
    pub relay: chathook_webhook::RelayConfig,
    /// Tencent Cloud Chat compatibility: the app id and the key UserSigs are signed with.
    pub tencent: TencentConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_addr: SocketAddr::from(([127, 0, 0, 1], 5001)),
            ws_addr: SocketAddr::from(([127, 0, 0, 1], 5200)),
            listen: ListenConfig::default(),
            data_dir: PathBuf::from("./chathook-data"),
            admin_key: None,
            log: LogConfig::default(),
            secrets: SecretsConfig::default(),
            auth: AuthConfig::default(),
            node_id: 1,
            limits: Limits::default(),
            gateway: GatewayConfig::default(),
            messages: MessagesConfig::default(),
            route: RouteConfig::default(),
            events: EventsConfig::default(),
            store: StoreConfig::default(),
            storage: StorageConfig::default(),
            cluster: ClusterConfig::default(),
            webhook: WebhookConfig::default(),
            relay: Default::default(),
            tencent: TencentConfig::default(),
        }
    }
}

/// The log's form on standard output: `text` (coloured only on a terminal) or `json` (one object per
/// line, for log collectors). Which lines is `RUST_LOG`'s (default `info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The secrets key: 32 bytes as standard base64; unset, `data_dir/secrets.key` (generated on first
/// start with the embedded store). Earlier keys still open what was sealed under them, and the server
/// seals it again under the current key (a rotation).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    pub key: Option<String>,
    pub previous_keys: Vec<String>,
}

impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsConfig")
            .field("key", &self.key.as_ref().map(|_| "********"))
            .field("previous_keys", &self.previous_keys.len())
            .finish()
    }
}

/// WuKongIM runs without a key unless `managerToken` is set, and many backends written for it send
/// none. chathook requires the admin key; `open = true` accepts calls without one, but only from
/// `open_networks` (everyone else still gets 401), and the server warns at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub open: bool,
    /// Where key-less calls are accepted from in open mode (CIDR).
    pub open_networks: Vec<ipnet::IpNet>,
    /// How wrong admin keys and login tokens slow down.
    pub throttle: ThrottleConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        // Loopback only: behind a proxy every client comes from a private network, so private ranges
        // are listed on purpose or not at all.
        let nets = ["127.0.0.0/8", "::1/128"];
        AuthConfig {
            open: false,
            open_networks: nets.iter().filter_map(|n| n.parse().ok()).collect(),
            throttle: ThrottleConfig::default(),
        }
    }
}

/// The event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Events older than this are removed once every registered consumer has acknowledged them.
    pub retention_hours: u64,
    /// How often retention (and expiry of idempotency keys) runs.
    pub prune_interval_secs: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention_hours: 7 * 24,
            prune_interval_secs: 60,
        }
    }
}

/// The embedded store's writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Most writes grouped into one durable commit.
    pub max_batch: usize,
    /// Writes that may queue for the writer before callers wait.
    pub queue_capacity: usize,
    /// Most events of the newest commits kept in memory for caught-up readers (SQLite; 0: none).
    pub tail_events: usize,
    /// Most bytes those events may take (each weighs its stored body and its message's payload).
    pub tail_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_batch: 2048,
            queue_capacity: 16_384,
            tail_events: 4096,
            tail_bytes: 16 << 20,
        }
    }
}

/// The storage backend. Its `Debug` masks the PostgreSQL URL (it may hold a password).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub backend: Backend,
    /// A libpq connection string or URI; required with `backend = "postgres"`.
    pub postgres_url: Option<String>,
    /// Connections each node keeps to PostgreSQL.
    pub postgres_max_connections: usize,
}

/// Where everything durable is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded store in `data_dir` (one node).
    #[default]
    Sqlite,
    /// A PostgreSQL database several nodes share.
    Postgres,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: Backend::Sqlite,
            postgres_url: None,
            postgres_max_connections: 16,
        }
    }
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("backend", &self.backend)
            .field(
                "postgres_url",
                &self.postgres_url.as_ref().map(|_| "********"),
            )
            .field("postgres_max_connections", &self.postgres_max_connections)
            .finish()
    }
}

/// Tencent Cloud Chat compatibility. Its `Debug` masks the key.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TencentConfig {
    /// The SDKAppID (0: none).
    pub sdk_app_id: u64,
    /// The app's secret key: with it set, clients may connect with a UserSig instead of a token.
    pub secret_key: Option<String>,
}

impl std::fmt::Debug for TencentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TencentConfig")
            .field("sdk_app_id", &self.sdk_app_id)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "********"))
            .finish()
    }
}

impl TencentConfig {
    /// The key UserSigs are verified with, when one is set.
    pub fn user_sig_key(&self) -> Option<chathook_im::usersig::UserSigKey> {
        self.secret_key
            .as_ref()
            .map(|key| chathook_im::usersig::UserSigKey {
                sdk_app_id: self.sdk_app_id,
                secret_key: key.clone(),
            })
    }
}

/// Flags given on the command line (each overrides the same key from every other source).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub api_addr: Option<String>,
    pub ws_addr: Option<String>,
    pub tcp_addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub node_id: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// The TCP gateway's address (`gateway.tcp_addr`), and whether it must be free (set by the
    /// operator) or may be skipped (the default); `None` when it is off.
    pub fn tcp_listener(&self) -> Result<Option<(SocketAddr, bool)>, String> {
        match self.gateway.tcp_addr.as_deref().map(str::trim) {
            None => Ok(Some((SocketAddr::from(([127, 0, 0, 1], 5100)), false))),
            Some("off") | Some("") => Ok(None),
            Some(addr) => addr.parse().map(|a| Some((a, true))).map_err(|_| {
                format!("{addr:?} is not an address like 127.0.0.1:5100 (or \"off\")")
            }),
        }
    }

    /// Loads the effective configuration from every source.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file.filter(|p| is_yaml(p)) {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_path_buf()));
            }
            let mapped = crate::wukongim_config::from_yaml(path)?;
            mapped.warn_ignored(&path.display().to_string());
            figment = figment.merge(Serialized::defaults(mapped.settings));
        } else if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_path_buf()));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
            let mut doc: toml::Table = text
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
            rename_wukongim_keys(&mut doc)?;
            let text = toml::to_string(&doc).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            figment = figment.merge(Toml::string(&text));
        }
        let wk_env = crate::wukongim_config::from_env(std::env::vars())?;
        wk_env.warn_ignored("WK_* environment variables");
        figment = figment.merge(Serialized::defaults(wk_env.settings));
        let env = Env::prefixed("CHATHOOK_").split("__").map(|key| {
            let lower = key.as_str().to_ascii_lowercase();
            for (wk, ours) in WUKONGIM_KEYS {
                if lower == format!("webhook.{}", wk.to_ascii_lowercase()) {
                    return format!("webhook.{ours}").into();
                }
            }
            key.into()
        });
        let env = env.filter(|key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            let known = TOP_LEVEL_KEYS.iter().any(|k| top.eq_ignore_ascii_case(k));
            if !known {
                tracing::warn!(variable = %key, "ignoring an environment variable that names no setting");
            }
            known
        });
        figment = figment.merge(env);
        if let Some(v) = &overrides.api_addr {
            figment = figment.merge(("api_addr", v));
        }
        if let Some(v) = &overrides.ws_addr {
            figment = figment.merge(("ws_addr", v));
        }
        if let Some(v) = &overrides.tcp_addr {
            figment = figment.merge(("gateway.tcp_addr", v));
        }
        if let Some(v) = &overrides.data_dir {
            figment = figment.merge(("data_dir", v));
        }
        if let Some(v) = overrides.node_id {
            figment = figment.merge(("node_id", v));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::Invalid(format!("{key}: {why}")));
        if self.node_id > 1023 {
            return bad("node_id", "must be at most 1023");
        }
        if let Err(why) = self.tcp_listener() {
            return bad("gateway.tcp_addr", &why);
        }
        if self
            .admin_key
            .as_deref()
            .is_some_and(|k| k.trim().chars().count() < crate::auth::MIN_ADMIN_KEY_CHARS)
        {
            return bad("admin_key", "must be at least 16 characters when set");
        }
        let l = &self.limits;
        for (key, value) in [
            ("limits.max_frame_bytes", l.max_frame_bytes),
            ("limits.max_payload_bytes", l.max_payload_bytes),
            ("limits.max_client_msg_no_bytes", l.max_client_msg_no_bytes),
            ("limits.connections_per_user", l.connections_per_user),
            ("limits.max_connections", l.max_connections),
            ("limits.group_max_members", l.group_max_members),
            ("limits.sync_max_limit", l.sync_max_limit),
            ("limits.sync_max_bytes", l.sync_max_bytes),
            ("limits.offline_uids_bytes", l.offline_uids_bytes),
            ("limits.outbound_queue", l.outbound_queue),
            ("limits.outbound_queue_bytes", l.outbound_queue_bytes),
            ("limits.max_unacked", l.max_unacked),
            ("limits.max_inflight_sends", l.max_inflight_sends),
            ("limits.max_http_body_bytes", l.max_http_body_bytes),
            ("store.max_batch", self.store.max_batch),
            ("store.queue_capacity", self.store.queue_capacity),
            (
                "storage.postgres_max_connections",
                self.storage.postgres_max_connections,
            ),
        ] {
            if value == 0 {
                return bad(key, "must be greater than 0");
            }
        }
        if self.storage.backend == Backend::Postgres
            && self
                .storage
                .postgres_url
                .as_deref()
                .is_none_or(str::is_empty)
        {
            return bad(
                "storage.postgres_url",
                "is required with storage.backend = \"postgres\"",
            );
        }
        if self.cluster.enabled() && self.storage.backend != Backend::Postgres {
            return bad(
                "cluster.nats_url",
                "needs storage.backend = \"postgres\" (the nodes share one database)",
            );
        }
        let c = &self.cluster;
        for (key, value) in [
            ("cluster.heartbeat_ms", c.heartbeat_ms),
            ("cluster.gap_wait_ms", c.gap_wait_ms),
            ("cluster.lease_ms", c.lease_ms),
        ] {
            if value == 0 {
                return bad(key, "must be greater than 0");
            }
        }
        if c.node_timeout_ms <= c.heartbeat_ms {
            return bad(
                "cluster.node_timeout_ms",
                "must be longer than cluster.heartbeat_ms",
            );
        }
        self.webhook.validate().map_err(ConfigError::Invalid)?;
        // One message at the largest payload, in base64 with its fields, and one event's share of its
        // offline recipients must fit one webhook body.
        let one_message =
            self.limits.max_payload_bytes.div_ceil(3) * 4 + 4096 + self.limits.offline_uids_bytes;
        if self.webhook.max_body_bytes < one_message {
            return Err(ConfigError::Invalid(format!(
                "webhook.max_body_bytes: must be at least {one_message} bytes, so that one message of \
                 limits.max_payload_bytes ({}) with limits.offline_uids_bytes ({}) of offline \
                 recipients fits a webhook body",
                self.limits.max_payload_bytes, self.limits.offline_uids_bytes
            )));
        }
        if self
            .tencent
            .secret_key
            .as_deref()
            .is_some_and(str::is_empty)
        {
            return bad("tencent.secret_key", "must not be empty when set");
        }
        if self.tencent.secret_key.is_some() && self.tencent.sdk_app_id == 0 {
            return bad(
                "tencent.sdk_app_id",
                "must be set when tencent.secret_key is (UserSigs name their app)",
            );
        }
        if l.max_connections > u32::MAX as usize >> 4 {
            return bad("limits.max_connections", "is too large");
        }
        for (key, value) in [
            ("limits.connect_timeout_ms", l.connect_timeout_ms),
            ("listen.header_timeout_ms", self.listen.header_timeout_ms),
            (
                "auth.throttle.base_block_ms",
                self.auth.throttle.base_block_ms,
            ),
            (
                "auth.throttle.max_block_ms",
                self.auth.throttle.max_block_ms,
            ),
            (
                "auth.throttle.forget_after_ms",
                self.auth.throttle.forget_after_ms,
            ),
            ("auth.throttle.max_keys", self.auth.throttle.max_keys as u64),
            ("listen.idle_timeout_ms", self.listen.idle_timeout_ms),
            (
                "listen.max_unauthenticated",
                self.listen.max_unauthenticated as u64,
            ),
            (
                "gateway.heartbeat_timeout_ms",
                self.gateway.heartbeat_timeout_ms,
            ),
            ("gateway.ack_timeout_ms", self.gateway.ack_timeout_ms),
            ("gateway.write_timeout_ms", self.gateway.write_timeout_ms),
            (
                "gateway.read_buffer_bytes",
                self.gateway.read_buffer_bytes as u64,
            ),
            (
                "events.prune_interval_secs",
                self.events.prune_interval_secs,
            ),
        ] {
            if value == 0 {
                return bad(key, "must be greater than 0");
            }
        }
        Ok(())
    }

    /// The configuration as TOML with secrets masked.
    pub fn to_masked_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.admin_key.is_some() {
            shown.admin_key = Some("********".into());
        }
        if shown.tencent.secret_key.is_some() {
            shown.tencent.secret_key = Some("********".into());
        }
        if shown.secrets.key.is_some() {
            shown.secrets.key = Some("********".into());
        }
        for key in &mut shown.secrets.previous_keys {
            *key = "********".into();
        }
        if shown.storage.postgres_url.is_some() {
            shown.storage.postgres_url = Some("********".into());
        }
        // http://user:password@proxy: the credentials are masked, the host is shown.
        if let Some(proxy) = shown.webhook.proxy.as_mut() {
            if let Some((scheme_user, host)) = proxy.rsplit_once('@') {
                let scheme = scheme_user.split("://").next().unwrap_or("http");
                *proxy = format!("{scheme}://********@{host}");
            }
        }
        // nats://user:password@host: the credentials are masked, the host is shown.
        if let Some((_, host)) = shown.cluster.nats_url.rsplit_once('@') {
            shown.cluster.nats_url = format!("nats://********@{host}");
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// WuKongIM's configuration file is YAML (`wk.yaml`).
fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// Accepts WuKongIM's `webhook.*` keys (`httpAddr`, `focusEvents`, `msgNotifyEventPushInterval`,
/// `msgNotifyEventCountPerPush`) by renaming them to ours; both spellings at once is an error.
fn rename_wukongim_keys(doc: &mut toml::Table) -> Result<(), ConfigError> {
    let Some(toml::Value::Table(webhook)) = doc.get_mut("webhook") else {
        return Ok(());
    };
    for (wk, ours) in WUKONGIM_KEYS {
        if let Some(v) = webhook.remove(wk) {
            if webhook.contains_key(ours) {
                return Err(ConfigError::Invalid(format!(
                    "webhook.{wk} and webhook.{ours} set the same thing; keep one"
                )));
            }
            webhook.insert(ours.to_string(), v);
        }
    }
    Ok(())
}

/// Figment's error, one line per problem, each naming the key, what was found and what is expected in
/// words (never a Rust type), and where the value came from.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", source_name(&m.name)))
                .unwrap_or_default();
            let problem = in_words(&e.kind);
            if key.is_empty() {
                format!("{problem}{source}")
            } else {
                format!("{key}: {problem}{source}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where a value came from, as an operator knows it (a flag's provider is named by its Rust type).
fn source_name(name: &str) -> String {
    if name.starts_with('(') {
        "a command-line flag".into()
    } else {
        name.to_string()
    }
}

/// What a deserialisation error says, in an operator's words.
fn in_words(kind: &figment::error::Kind) -> String {
    use figment::error::{Actual, Kind};
    let found = |a: &Actual| match a {
        Actual::Str(v) => format!("{v:?}"),
        Actual::Signed(v) => v.to_string(),
        Actual::Unsigned(v) => v.to_string(),
        Actual::Float(v) => v.to_string(),
        Actual::Bool(v) => v.to_string(),
        Actual::Seq => "a list".into(),
        Actual::Map => "a table".into(),
        other => other.to_string(),
    };
    match kind {
        Kind::InvalidType(a, expected) | Kind::InvalidValue(a, expected) => {
            format!(
                "found {}, expected {}",
                found(a),
                expected_in_words(expected)
            )
        }
        Kind::UnknownVariant(v, options) => {
            format!("{v:?} is not one of: {}", options.join(", "))
        }
        Kind::UnknownField(f, _) => format!("{f} is no setting here"),
        Kind::Message(m) if m.contains("socket address") => {
            "not an address: expected host:port, such as 127.0.0.1:5001".into()
        }
        Kind::Message(m) if m.contains("invalid IP address") => {
            "not a network: expected CIDR, such as 10.0.0.0/8 or ::1/128".into()
        }
        other => other.to_string(),
    }
}

/// serde's expectation (a Rust type or a phrase) in words.
fn expected_in_words(expected: &str) -> String {
    let whole = |max: u128| format!("a whole number from 0 to {max}");
    match expected.trim_start_matches("a ").trim_start_matches("an ") {
        "u8" => whole(u8::MAX.into()),
        "u16" => whole(u16::MAX.into()),
        "u32" => whole(u32::MAX.into()),
        "u64" | "usize" => whole(u64::MAX.into()),
        "i64" | "i32" => "a whole number".into(),
        "f64" | "f32" => "a number".into(),
        "boolean" | "bool" => "true or false".into(),
        "string" => "text".into(),
        "sequence" => "a list".into(),
        _ => expected.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_top_level_setting_can_be_given_by_environment() {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        for key in defaults.as_object().unwrap().keys() {
            assert!(
                TOP_LEVEL_KEYS.contains(&key.as_str()),
                "{key} is missing from TOP_LEVEL_KEYS"
            );
        }
    }

    #[test]
    fn defaults_are_wukongim_ports() {
        let c = Config::default();
        assert_eq!(c.api_addr.port(), 5001);
        assert_eq!(c.ws_addr.port(), 5200);
        assert!(c.validate().is_ok());
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn file_env_and_flags_layer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "api_addr = \"127.0.0.1:7001\"\nnode_id = 3\n[limits]\nsync_max_limit = 50\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHATHOOK_NODE_ID", "4");
            jail.set_env("CHATHOOK_LIMITS__MAX_FRAME_BYTES", "1234");
            jail.set_env("CHATHOOK_BINARY", "/not/a/setting");
            let c = Config::load(Some(&file), &Overrides::default()).unwrap();
            assert_eq!(c.api_addr.port(), 7001);
            assert_eq!(c.node_id, 4);
            assert_eq!(c.limits.max_frame_bytes, 1234);
            assert_eq!(c.limits.sync_max_limit, 50);
            let flags = Overrides {
                api_addr: Some("127.0.0.1:9001".into()),
                ..Default::default()
            };
            let c = Config::load(Some(&file), &flags).unwrap();
            assert_eq!(c.api_addr.port(), 9001);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn wukongim_webhook_keys_work_in_the_environment_too() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHATHOOK_WEBHOOK__HTTPADDR", "http://127.0.0.1:9000/hook");
            jail.set_env("CHATHOOK_WEBHOOK__MSGNOTIFYEVENTPUSHINTERVAL", "250ms");
            jail.set_env("CHATHOOK_WEBHOOK__MSGNOTIFYEVENTCOUNTPERPUSH", "20");
            jail.set_env("CHATHOOK_WEBHOOK__FOCUSEVENTS", "[\"msg.notify\"]");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(
                c.webhook.http_addr.as_deref(),
                Some("http://127.0.0.1:9000/hook")
            );
            assert_eq!(
                c.webhook.msg_notify_interval,
                std::time::Duration::from_millis(250)
            );
            assert_eq!(c.webhook.msg_notify_max_batch, 20);
            assert_eq!(c.webhook.focus_events, vec!["msg.notify".to_string()]);
            Ok(())
        });
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[webhook]\nhttpAddr = \"http://a.localhost/x\"\nhttp_addr = \"http://b.localhost/x\"\n").unwrap();
        let err = Config::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("httpAddr") && err.contains("http_addr"),
            "{err}"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn unknown_keys_and_bad_values_name_the_key() {
        // Inside a jail: the tests that set environment variables do, so none is set meanwhile.
        figment::Jail::expect_with(|_| {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("c.toml");
            std::fs::write(&file, "[limits]\nmax_frame_bites = 1\n").unwrap();
            let err = Config::load(Some(&file), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("max_frame_bites"), "{err}");
            std::fs::write(&file, "api_addr = \"not an address\"\n").unwrap();
            let err = Config::load(Some(&file), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("api_addr"), "{err}");
            std::fs::write(&file, "node_id = 5000\n").unwrap();
            let err = Config::load(Some(&file), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("node_id"), "{err}");
            let err = Config::load(Some(&dir.path().join("none.toml")), &Overrides::default())
                .unwrap_err();
            assert!(matches!(err, ConfigError::MissingFile(_)));
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn configuration_errors_name_the_key_and_the_expected_form_in_words() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHATHOOK_LIMITS__SENDS_PER_SEC", "abc");
            let e = Config::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("limits.sends_per_sec"), "{e}");
            assert!(e.contains("a whole number from 0 to 4294967295"), "{e}");
            jail.set_env("CHATHOOK_LIMITS__SENDS_PER_SEC", "5");
            jail.set_env("CHATHOOK_LOG__FORMAT", "xml");
            let e = Config::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("log.format") && e.contains("text, json"), "{e}");
            jail.set_env("CHATHOOK_LOG__FORMAT", "json");
            let flags = Overrides {
                api_addr: Some("127.0.0.1:-5".into()),
                ..Overrides::default()
            };
            let e = Config::load(None, &flags).unwrap_err().to_string();
            assert!(e.contains("api_addr") && e.contains("host:port"), "{e}");
            assert!(e.contains("command-line flag"), "{e}");
            assert!(!e.contains("alloc::") && !e.contains("&str"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn a_webhook_body_must_hold_one_message_of_the_largest_payload() {
        let mut c = Config::default();
        c.limits.max_payload_bytes = 3_000_000;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("webhook.max_body_bytes") && e.contains("limits.max_payload_bytes"),
            "{e}"
        );
        c.webhook.max_body_bytes = 4_004_096;
        assert!(
            c.validate().is_err(),
            "the offline recipients need room too"
        );
        c.webhook.max_body_bytes = 4_004_096 + 256 * 1024;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn masked_config_hides_the_admin_key() {
        let c = Config {
            admin_key: Some("super-secret-key".into()),
            tencent: TencentConfig {
                sdk_app_id: 1_400_000_000,
                secret_key: Some("tencent-secret-key".into()),
            },
            ..Default::default()
        };
        let shown = c.to_masked_toml();
        assert!(!shown.contains("super-secret-key"));
        assert!(!shown.contains("tencent-secret-key"));
        assert!(shown.contains("********"));
        assert!(shown.contains("api_addr"));
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn wukongim_yaml_and_wk_variables_configure_the_shared_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wk.yaml");
        std::fs::write(
            &file,
            "httpAddr: 127.0.0.1:6001\nwsAddr: ws://127.0.0.1:6200\nmanagerToken: wk-manager-token\n\
             cluster:\n  nodeId: 1001\nwebhook:\n  httpAddr: http://127.0.0.1:9000/hook\n\
             \x20 msgNotifyEventRetryMaxCount: 5\nagent:\n  webhook:\n    httpAddr: http://127.0.0.1:9000/agent\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            // WK_* overrides the file, CHATHOOK_* overrides WK_*
            jail.set_env("WK_WEBHOOK_MSGNOTIFYEVENTCOUNTPERPUSH", "9");
            jail.set_env("WK_HTTPADDR", "127.0.0.1:7001");
            jail.set_env("CHATHOOK_API_ADDR", "127.0.0.1:8001");
            jail.set_env("WK_WSADDR", "ws://127.0.0.1:7200");
            let c = Config::load(Some(&file), &Overrides::default()).unwrap();
            assert_eq!(c.api_addr.port(), 8001);
            assert_eq!(c.ws_addr.port(), 7200);
            assert_eq!(c.admin_key.as_deref(), Some("wk-manager-token"));
            assert_eq!(
                c.webhook.http_addr.as_deref(),
                Some("http://127.0.0.1:9000/hook")
            );
            assert_eq!(c.webhook.msg_notify_max_batch, 9);
            assert_eq!(c.webhook.msg_notify_retry_max_count, Some(5));
            assert_eq!(
                c.webhook.agent_http_addr.as_deref(),
                Some("http://127.0.0.1:9000/agent")
            );
            assert_eq!(
                c.webhook.warnings().len(),
                1,
                "the retry cap is ignored, said once"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn a_grpc_webhook_alone_is_refused_and_beside_http_warned() {
        figment::Jail::expect_with(|_| {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("wk.yml");
            std::fs::write(&file, "webhook:\n  grpcAddr: 127.0.0.1:6979\n").unwrap();
            let err = Config::load(Some(&file), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("grpcAddr") && err.contains("httpAddr"),
                "{err}"
            );
            std::fs::write(
                &file,
                "webhook:\n  grpcAddr: 127.0.0.1:6979\n  httpAddr: http://127.0.0.1:9/h\n",
            )
            .unwrap();
            let c = Config::load(Some(&file), &Overrides::default()).unwrap();
            assert!(c.webhook.warnings()[0].contains("grpcAddr"));
            Ok(())
        });
    }

    #[test]
    fn open_mode_is_off_by_default_with_only_loopback_listed() {
        let auth = Config::default().auth;
        assert!(!auth.open);
        for ip in ["127.0.0.1", "::1"] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert!(auth.open_networks.iter().any(|n| n.contains(&ip)), "{ip}");
        }
        for ip in [
            "10.1.2.3",
            "192.168.1.1",
            "172.20.0.1",
            "fd00::1",
            "8.8.8.8",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert!(!auth.open_networks.iter().any(|n| n.contains(&ip)), "{ip}");
        }
    }
}
