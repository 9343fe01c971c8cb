//! Webhook endpoints: the model, ids and secrets (the URL rules are in `url_rules`).

use std::borrow::Cow;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chathook_events::{Event, EventKind};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::filters::{id_matches, Filters};
use crate::receiver_auth::ReceiverAuth;
use crate::url_rules::UrlError;

/// The source name of this server's own IM core (relay sources have ids).
pub const LOCAL_SOURCE: &str = "local";

/// How events are rendered for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// WuKongIM's bodies and `?event=` names.
    Wukongim,
    /// Standard Webhooks envelope `{type, timestamp, data}` with native names.
    Standard,
    /// Tencent Cloud Chat's callbacks (`?SdkAppid=..&CallbackCommand=..`, Tencent's bodies).
    Tencent,
}

/// How an endpoint gets its events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// chathook sends them to its URL.
    #[default]
    Push,
    /// It has no URL: its consumer fetches them (`GET .../poll` with its poll token).
    Polling,
}

/// A webhook endpoint as stored and served (the secret is left out of API answers but on create and
/// rotate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    /// Push (the default) or polling.
    #[serde(default, skip_serializing_if = "is_push")]
    pub kind: EndpointKind,
    /// Empty for a polling endpoint.
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
    /// When not empty, the only sources whose events it receives: relay source ids, and `local` for
    /// this server's own IM core.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Which messages, channels and users it takes among the events it selects.
    #[serde(default, skip_serializing_if = "Filters::is_empty")]
    pub filters: Filters,
    /// The foreign events (relay mode: another server's webhooks without a typed event here) it
    /// receives, by name (`tencent.<CallbackCommand>`, `wukongim.<event>`), each exact or ending in
    /// `*` for a prefix. Selecting the `foreign` kind in `events` takes every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign: Vec<String>,
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
    /// Static headers, basic credentials and TLS settings towards the receiver.
    #[serde(default, skip_serializing_if = "ReceiverAuth::is_empty")]
    pub auth: ReceiverAuth,
    /// A polling endpoint's token (`Authorization: Bearer` on `GET .../poll`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_token: Option<String>,
    /// Its own retry schedule (seconds before each attempt after the first failure); `None` follows
    /// `webhook.retry_schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_schedule: Option<Vec<u64>>,
}

/// A before-send hook: the messages of one channel type, judged before they are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
        let now = crate::clock::now_ms();
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
            sources: Vec::new(),
            filters: Filters::default(),
            foreign: Vec::new(),
            before_send: Vec::new(),
            hook_timeout_ms: MAX_HOOK_TIMEOUT_MS,
            on_failure: OnFailure::Allow,
            auth: ReceiverAuth::default(),
            retry_schedule: None,
            kind: EndpointKind::Push,
            poll_token: None,
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

    /// Whether it takes `event`'s source and passes its filters (what it selects is [`Self::selects`]).
    pub fn admits(&self, event: &Event) -> bool {
        let source = event.source().unwrap_or(LOCAL_SOURCE);
        (self.sources.is_empty() || self.sources.iter().any(|s| s == source))
            && self.filters.matches(event)
    }

    /// Whether it selects `event` (by kind, a message's channel type for Tencent's after-send names, a
    /// foreign event's name; never an operational event about itself); the feature switches, the flavour, its sources and filters decide the rest.
    pub fn selects(&self, event: &Event) -> bool {
        // An operational event never goes to the endpoint it is about.
        if event.concerns_endpoint() == Some(self.id.as_str()) {
            return false;
        }
        match event.inner() {
            Event::Foreign(f) => {
                self.events.contains(&EventKind::Foreign) || {
                    let name = f.name();
                    self.foreign
                        .iter()
                        .any(|pattern| id_matches(pattern, &name))
                }
            }
            Event::MessageSent(m) => {
                self.events.contains(&EventKind::MessageSent)
                    && (self.message_channel_types.is_empty()
                        || self.message_channel_types.contains(&m.channel_type))
            }
            other => self.events.contains(&other.kind()),
        }
    }

    /// The delays of its retries: its own schedule, or `default` (`webhook.retry_schedule`).
    pub fn retry_schedule<'a>(&self, default: &'a [Duration]) -> Cow<'a, [Duration]> {
        match &self.retry_schedule {
            Some(own) => Cow::Owned(own.iter().map(|s| Duration::from_secs(*s)).collect()),
            None => Cow::Borrowed(default),
        }
    }

    /// Whether chathook sends its events (a polling endpoint's consumer fetches them).
    pub fn pushes(&self) -> bool {
        self.kind == EndpointKind::Push
    }

    /// The name of this endpoint's cursor in the event log.
    pub fn consumer_name(&self) -> String {
        consumer_name(&self.id)
    }
}

fn is_push(kind: &EndpointKind) -> bool {
    *kind == EndpointKind::Push
}

pub fn consumer_name(id: &str) -> String {
    format!("webhook:{id}")
}

/// A polling endpoint's token: `ptok_` and the hex of 32 random bytes.
pub fn new_poll_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("ptok_{hex}")
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

#[cfg(test)]
mod tests {
    use super::*;
    use chathook_events::{Foreign, GroupRef, Origin};

    #[test]
    fn secrets() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert!(check_secret(&s).is_ok());
        assert!(check_secret("whsec_AAAA").is_err());
        assert!(check_secret("nope").is_err());
    }

    fn endpoint(events: Vec<EventKind>) -> Endpoint {
        Endpoint::new(
            "ep".into(),
            "http://x".into(),
            Flavour::Standard,
            events,
            "s".into(),
        )
    }

    fn recall() -> Event {
        Event::Foreign(Box::new(Foreign {
            origin: Origin::Tencent,
            command: "Group.CallbackAfterRecallMsg".into(),
            body: "{}".into(),
            query: vec![],
        }))
    }

    #[test]
    fn sources_limit_by_relay_source_and_local_names_the_im_core() {
        let dismissed = Event::GroupDismissed(GroupRef {
            channel_id: "g".into(),
        });
        let mut e = endpoint(vec![EventKind::GroupDismissed]);
        assert!(e.admits(&dismissed));
        assert!(e.admits(&Event::relayed("src_a", dismissed.clone())));
        e.sources = vec!["src_a".into()];
        assert!(!e.admits(&dismissed));
        assert!(e.admits(&Event::relayed("src_a", dismissed.clone())));
        assert!(!e.admits(&Event::relayed("src_b", dismissed.clone())));
        e.sources = vec![LOCAL_SOURCE.into()];
        assert!(e.admits(&dismissed));
        assert!(!e.admits(&Event::relayed("src_a", dismissed)));
    }

    #[test]
    fn foreign_events_are_selected_by_exact_name_by_prefix_or_all_by_kind() {
        let relayed = Event::relayed("src_a", recall());
        let mut e = endpoint(vec![EventKind::MessageSent]);
        assert!(!e.selects(&relayed));
        e.foreign = vec!["tencent.Group.CallbackAfterRecallMsg".into()];
        assert!(e.selects(&relayed));
        e.foreign = vec!["tencent.Group.*".into()];
        assert!(e.selects(&relayed));
        e.foreign = vec!["tencent.C2C.*".into(), "wukongim.*".into()];
        assert!(!e.selects(&relayed));
        e.foreign = vec![];
        e.events.push(EventKind::Foreign);
        assert!(e.selects(&relayed));
    }
}
