//! Webhook endpoints: the model, the URL rules (seed: Tencent's "Webhook Configuration" console page),
//! the port-prefix rule, and secrets.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chathook_events::EventKind;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// How events are rendered for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// WuKongIM's bodies and `?event=` names.
    Wukongim,
    /// Standard Webhooks envelope `{type, timestamp, data}` with native names.
    Standard,
    /// Tencent Cloud Chat's callbacks (`?SdkAppid=..&CallbackCommand=..`, Tencent's bodies).
    Tencent,
}

/// A webhook endpoint as stored and served (the secret is left out of API answers but on create and
/// rotate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub flavour: Flavour,
    /// The kinds it receives (stored and shown by native name).
    pub events: Vec<EventKind>,
    pub secret: String,
    /// The secret before the last rotation and until when (unix ms) it still signs.
    #[serde(default)]
    pub previous_secret: Option<(String, i64)>,
    /// The operator's switch (the server disabling it is in its health).
    pub enabled: bool,
    pub description: String,
    pub timeout_ms: u64,
    pub max_in_flight: u32,
    pub rate_limit_per_s: Option<u32>,
    /// Unix ms.
    pub created_at: i64,
    pub updated_at: i64,
    /// Defined in the config file: the API cannot change it.
    #[serde(default)]
    pub read_only: bool,
    /// Unix ms at which the operator disabled it; `None` while enabled.
    #[serde(default)]
    pub disabled_at: Option<i64>,
    /// The tencent flavour's callback token: each request then carries `Sign` (the SHA-256 of the token
    /// and `RequestTime`) and `RequestTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_token: Option<String>,
    /// When not empty, the only channel types whose `message.sent` events it receives (set when its
    /// events name one of Tencent's after-send commands without the other).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_channel_types: Vec<u8>,
    /// The before-send hooks it answers (at most one endpoint per hook).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before_send: Vec<HookKind>,
    /// How long a before-send verdict may take (at most 2000 ms).
    #[serde(default = "default_hook_timeout_ms")]
    pub hook_timeout_ms: u64,
    /// What a before-send hook that fails (timeout, no connection, not HTTP 200, an answer that does
    /// not parse, an unknown code) decides.
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// A before-send hook: the messages of one channel type, judged before they are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HookKind {
    #[serde(rename = "message.before_send.person")]
    Person,
    #[serde(rename = "message.before_send.group")]
    Group,
}

impl HookKind {
    /// The native name.
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Person => "message.before_send.person",
            HookKind::Group => "message.before_send.group",
        }
    }

    /// Tencent Cloud Chat's `CallbackCommand`.
    pub fn tencent_command(self) -> &'static str {
        match self {
            HookKind::Person => "C2C.CallbackBeforeSendMsg",
            HookKind::Group => "Group.CallbackBeforeSendMsg",
        }
    }

    /// The hook named `name` (native or Tencent's).
    pub fn from_name(name: &str) -> Option<HookKind> {
        [HookKind::Person, HookKind::Group]
            .into_iter()
            .find(|k| k.name() == name || k.tencent_command() == name)
    }

    /// The hook judging messages of `channel_type`.
    pub fn for_channel_type(channel_type: u8) -> Option<HookKind> {
        match channel_type {
            1 => Some(HookKind::Person),
            2 => Some(HookKind::Group),
            _ => None,
        }
    }
}

/// What a failed before-send hook decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Send the message as it is (Tencent's rule: fail open).
    #[default]
    Allow,
    /// Refuse it.
    Reject,
}

/// The default and the largest before-send timeout.
pub const MAX_HOOK_TIMEOUT_MS: u64 = 2_000;

fn default_hook_timeout_ms() -> u64 {
    MAX_HOOK_TIMEOUT_MS
}

impl Endpoint {
    /// A new endpoint with the defaults: enabled, 5 s timeout, 32 attempts in flight, no rate limit.
    pub fn new(
        id: String,
        url: String,
        flavour: Flavour,
        events: Vec<EventKind>,
        secret: String,
    ) -> Endpoint {
        let now = crate::dispatcher::now_ms();
        Endpoint {
            id,
            url,
            flavour,
            events,
            secret,
            previous_secret: None,
            enabled: true,
            description: String::new(),
            timeout_ms: 5_000,
            max_in_flight: 32,
            rate_limit_per_s: None,
            created_at: now,
            updated_at: now,
            read_only: false,
            disabled_at: None,
            sign_token: None,
            message_channel_types: Vec::new(),
            before_send: Vec::new(),
            hook_timeout_ms: MAX_HOOK_TIMEOUT_MS,
            on_failure: OnFailure::Allow,
        }
    }

    /// The secrets that sign a request now: the current one and, during its grace period, the previous.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&str> {
        let mut out = vec![self.secret.as_str()];
        if let Some((old, until)) = &self.previous_secret {
            if *until > now_ms {
                out.push(old);
            }
        }
        out
    }

    /// The name of this endpoint's cursor in the event log.
    pub fn consumer_name(&self) -> String {
        consumer_name(&self.id)
    }
}

pub fn consumer_name(id: &str) -> String {
    format!("webhook:{id}")
}

/// `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// A readable random id.
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

/// Checks a `whsec_` secret given by the caller: the prefix and 24 to 64 bytes of base64.
pub fn check_secret(secret: &str) -> Result<(), UrlError> {
    let bytes = secret
        .strip_prefix("whsec_")
        .and_then(|b| STANDARD.decode(b).ok());
    match bytes {
        Some(b) if (24..=64).contains(&b.len()) => Ok(()),
        _ => Err(UrlError {
            code: "secret_invalid",
            message: "secret must be whsec_ followed by the base64 of 24 to 64 bytes".into(),
        }),
    }
}

/// A broken URL rule: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UrlError {
    pub code: &'static str,
    pub message: String,
}

fn url_error(code: &'static str, message: impl Into<String>) -> UrlError {
    UrlError {
        code,
        message: message.into(),
    }
}

/// Longest domain name an endpoint may use.
pub const MAX_DOMAIN_LEN: usize = 63;

/// Checks an endpoint URL against the console's rules; returns the parsed URL.
pub fn check_url(raw: &str) -> Result<url::Url, UrlError> {
    let lower = raw.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(url_error(
            "url_scheme",
            "the URL must start with http:// or https://",
        ));
    }
    if raw.chars().any(char::is_whitespace) {
        return Err(url_error("url_space", "the URL must not contain spaces"));
    }
    if let Some(c) = raw.chars().find(|c| matches!(c, '!' | '$' | '&' | '?')) {
        return Err(url_error(
            "url_forbidden_character",
            format!("the URL must not contain '{c}' (none of ! $ & ? are allowed; chathook appends the query string)"),
        ));
    }
    if raw.contains('#') {
        return Err(url_error(
            "url_fragment",
            "the URL must not contain a fragment (#)",
        ));
    }
    let after_scheme = &raw[raw.find("://").map_or(0, |i| i + 3)..];
    let authority = after_scheme.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(url_error(
            "url_userinfo",
            "the URL must not carry user:password@",
        ));
    }
    let host = if let Some(rest) = authority.strip_prefix('[') {
        // IPv6 literal
        let end = rest
            .find(']')
            .ok_or_else(|| url_error("url_host_invalid", "an IPv6 host must be closed by ]"))?;
        let literal = &rest[..end];
        literal.parse::<std::net::Ipv6Addr>().map_err(|_| {
            url_error(
                "url_host_invalid",
                format!("{literal} is not an IPv6 address"),
            )
        })?;
        None
    } else {
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        if host.parse::<std::net::Ipv4Addr>().is_ok() {
            None
        } else {
            Some(host)
        }
    };
    if let Some(domain) = host {
        check_domain(domain)?;
    }
    url::Url::parse(raw)
        .map_err(|e| url_error("url_invalid", format!("the URL does not parse: {e}")))
}

fn check_domain(domain: &str) -> Result<(), UrlError> {
    if domain.is_empty() {
        return Err(url_error("url_host_missing", "the URL has no host"));
    }
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(url_error(
            "url_domain_too_long",
            format!(
                "the domain is {} characters; at most {MAX_DOMAIN_LEN} are allowed",
                domain.len()
            ),
        ));
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(url_error(
                "url_label_empty",
                "the domain has an empty label (two dots in a row, or a dot at an end)",
            ));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(url_error(
                "url_label_characters",
                format!("the domain label '{label}' may hold only letters, digits and hyphens"),
            ));
        }
        if label.chars().all(|c| c == '-') {
            return Err(url_error(
                "url_label_only_hyphens",
                format!("the domain label '{label}' is only hyphens"),
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(url_error(
                "url_label_hyphen_edge",
                format!("the domain label '{label}' must not start or end with a hyphen"),
            ));
        }
        if label.contains("--") {
            return Err(url_error(
                "url_label_double_hyphen",
                format!("the domain label '{label}' must not contain two hyphens in a row"),
            ));
        }
    }
    Ok(())
}

/// The port a URL connects to (the scheme's default when none is written).
pub fn effective_port(url: &url::Url) -> u16 {
    url.port_or_known_default().unwrap_or(0)
}

/// True when changing from `old` to `new` hits the port-prefix rule: the ports differ and one's decimal
/// form starts with the other's (443 -> 4433, 80 -> 8080), a change that is easy to make by a typo.
pub fn port_prefix_conflict(old: u16, new: u16) -> bool {
    if old == new {
        return false;
    }
    let (a, b) = (old.to_string(), new.to_string());
    a.starts_with(&b) || b.starts_with(&a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_url_rule_has_its_code() {
        let cases = [
            ("ftp://127.0.0.1/cb", "url_scheme"),
            ("127.0.0.1/cb", "url_scheme"),
            ("http://exa mple.localhost/cb", "url_space"),
            ("http://127.0.0.1/c!b", "url_forbidden_character"),
            ("http://127.0.0.1/c$b", "url_forbidden_character"),
            ("http://127.0.0.1/c&b", "url_forbidden_character"),
            ("http://127.0.0.1/cb?x=1", "url_forbidden_character"),
            ("http://a--b.localhost/cb", "url_label_double_hyphen"),
            ("http://-ab.localhost/cb", "url_label_hyphen_edge"),
            ("http://ab-.localhost/cb", "url_label_hyphen_edge"),
            ("http://---.localhost/cb", "url_label_only_hyphens"),
            ("http://a_b.localhost/cb", "url_label_characters"),
            ("http://a..b/cb", "url_label_empty"),
            ("http://u:p@a.localhost/cb", "url_userinfo"),
            ("http://a.localhost/cb#x", "url_fragment"),
        ];
        for (url, code) in cases {
            assert_eq!(check_url(url).unwrap_err().code, code, "{url}");
        }
        for ok in [
            "http://127.0.0.1/imcallback",
            "https://a-b.localhost/cb",
            "http://[::1]:8080/x",
            "HTTPS://Example.COM",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_domain_length_edge_is_63() {
        let at = format!("http://{}.localhost/cb", "a".repeat(53));
        let over = format!("http://{}.localhost/cb", "a".repeat(54));
        assert!(check_url(&at).is_ok());
        assert_eq!(check_url(&over).unwrap_err().code, "url_domain_too_long");
    }

    #[test]
    fn port_prefix_rule() {
        assert!(port_prefix_conflict(443, 4433));
        assert!(port_prefix_conflict(4433, 443));
        assert!(port_prefix_conflict(80, 8080));
        assert!(!port_prefix_conflict(443, 8443));
        assert!(!port_prefix_conflict(80, 80));
        assert_eq!(
            effective_port(&check_url("https://a.localhost/x").unwrap()),
            443
        );
    }

    #[test]
    fn secrets() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert!(check_secret(&s).is_ok());
        assert!(check_secret("whsec_AAAA").is_err());
        assert!(check_secret("nope").is_err());
    }
}
