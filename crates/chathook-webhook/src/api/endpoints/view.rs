//! An endpoint as the API shows it: its settings (secret values masked), its health, and on `GET
//! .../{id}` where it stands in the event log.

use std::collections::BTreeMap;

use chathook_events::EventKind;
use serde::Serialize;
use utoipa::ToSchema;

use crate::catalog;
use crate::endpoint::{Endpoint, EndpointKind, Flavour, HookKind, OnFailure};
use crate::engine::WebhookEngine;
use crate::features::Feature;
use crate::filters::Filters;
use crate::format::rfc3339;
use crate::receiver_auth::{BasicAuth, ClientTls};

/// An endpoint as the API shows it: its settings and its health together.
#[derive(Serialize, ToSchema)]
pub(in crate::api) struct EndpointView {
    id: String,
    /// `push`, or `polling` (no URL; `GET .../poll` with its `poll_token`).
    kind: EndpointKind,
    url: String,
    flavour: Flavour,
    /// The events it receives (native names).
    #[schema(value_type = Vec<String>)]
    events: Vec<EventKind>,
    /// Selected events whose feature switch is off (selected, not delivered).
    inactive_events: Vec<InactiveEvent>,
    /// Delivering: enabled by the operator and not disabled by the server.
    enabled: bool,
    /// Why the server disabled it, when it did.
    disabled_reason: Option<String>,
    description: String,
    timeout_ms: u64,
    max_in_flight: u32,
    rate_limit_per_s: Option<u32>,
    created_at: String,
    updated_at: String,
    /// Defined in the config file: the API cannot change it.
    read_only: bool,
    failing_since: Option<String>,
    /// The circuit breaker is open: deliveries pause but for a probe now and then.
    breaker_open: bool,
    disabled_at: Option<String>,
    /// False once disabled for `webhook.hold_disabled`: retention no longer waits for it.
    holds_event_log: bool,
    /// Events retention removed while it was disabled, shown once it is enabled again.
    gap: Option<GapView>,
    /// Whether the tencent flavour's `sign_token` is set (the token is shown only on create).
    sign_token_set: bool,
    /// The before-send hooks it answers.
    before_send: Vec<HookKind>,
    /// Message events limited to these channel types (1 person, 2 group); empty = all.
    message_channel_types: Vec<u8>,
    /// The foreign events it receives (relay mode), by name or prefix.
    foreign: Vec<String>,
    /// Only events from these sources (relay source ids, `local`); empty = all.
    sources: Vec<String>,
    /// Which messages, channels and users it takes (empty lists: all).
    filters: Filters,
    hook_timeout_ms: u64,
    on_failure: OnFailure,
    /// Static headers sent with every request; values shown as `********`.
    headers: BTreeMap<String, String>,
    /// HTTP basic credentials; the password shown as `********`.
    basic_auth: Option<BasicAuth>,
    /// TLS towards the receiver; the client key shown as `********`.
    tls: Option<ClientTls>,
    /// Its own retry schedule in seconds; `null` follows the server's `webhook.retry_schedule`.
    retry_schedule: Option<Vec<u64>>,
    /// Only on create and rotate.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// Only on create, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    sign_token: Option<String>,
    /// A polling endpoint's token: only on create and rotate.
    #[serde(skip_serializing_if = "Option::is_none")]
    poll_token: Option<String>,
    /// Only on rotate: until when the previous secret still signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) previous_secret_valid_until: Option<String>,
    /// Only on `GET .../{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) queue: Option<QueueView>,
}

#[derive(Serialize, ToSchema)]
pub(in crate::api) struct InactiveEvent {
    #[schema(value_type = String)]
    event: EventKind,
    /// The feature switch it waits for.
    feature: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub(in crate::api) struct GapView {
    first_position: u64,
    last_position: u64,
    count: u64,
    from: String,
    until: String,
}

/// Where the endpoint stands in the event log and its retry queue.
#[derive(Serialize, ToSchema)]
pub(in crate::api) struct QueueView {
    pub(super) events_behind: u64,
    pub(super) retrying: u64,
    pub(super) dead_letters: u64,
    pub(super) oldest_retrying_event_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(in crate::api) struct EndpointList {
    pub(super) data: Vec<EndpointView>,
}

impl EndpointView {
    /// The view of `e`; the secret and the sign token only when `with_secret`.
    pub(super) fn of(engine: &WebhookEngine, e: &Endpoint, with_secret: bool) -> EndpointView {
        let features = engine.features();
        let health = engine.health(&e.id);
        let shown = e.auth.masked();
        EndpointView {
            id: e.id.clone(),
            kind: e.kind,
            url: e.url.clone(),
            flavour: e.flavour,
            events: e.events.clone(),
            inactive_events: e
                .events
                .iter()
                .filter(|kind| !crate::catalog::allowed(&features, **kind))
                .map(|kind| InactiveEvent {
                    event: *kind,
                    feature: catalog::entry(*kind).feature.map(Feature::name),
                })
                .collect(),
            enabled: health.active(e),
            disabled_reason: health.server_disabled.as_ref().map(|d| d.reason.clone()),
            description: e.description.clone(),
            timeout_ms: e.timeout_ms,
            max_in_flight: e.max_in_flight,
            rate_limit_per_s: e.rate_limit_per_s,
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
            read_only: e.read_only,
            failing_since: health.failing_since.map(rfc3339),
            breaker_open: engine.breaker_open(&e.id),
            disabled_at: health.disabled_since(e).map(rfc3339),
            holds_event_log: health.log_released.is_none(),
            gap: health.gap.as_ref().map(|g| GapView {
                first_position: g.first_position,
                last_position: g.last_position,
                count: g.count,
                from: rfc3339(g.from_ms),
                until: rfc3339(g.until_ms),
            }),
            sign_token_set: e.sign_token.is_some(),
            before_send: e.before_send.clone(),
            message_channel_types: e.message_channel_types.clone(),
            foreign: e.foreign.clone(),
            sources: e.sources.clone(),
            filters: e.filters.clone(),
            hook_timeout_ms: e.hook_timeout_ms,
            on_failure: e.on_failure,
            headers: shown.headers,
            basic_auth: shown.basic_auth,
            tls: shown.tls,
            retry_schedule: e.retry_schedule.clone(),
            secret: with_secret.then(|| e.secret.clone()),
            sign_token: e.sign_token.clone().filter(|_| with_secret),
            poll_token: e.poll_token.clone().filter(|_| with_secret),
            previous_secret_valid_until: None,
            queue: None,
        }
    }
}
