//! Endpoints: create, list, show, change, delete, and rotate the secret; the checks every setting passes
//! (URL rules, events and hooks, limits, the Tencent sign token).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chathook_events::EventKind;
use chathook_http::{ApiError, V1Error, V1ErrorBody, V1Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{bad, check_description, check_sign_token, engine_error, find, store_error, ApiResult};
use crate::catalog;
use crate::clock::now_ms;
use crate::config_endpoints::resolve_events;
use crate::endpoint::{
    check_secret, new_id, new_secret, Endpoint, Flavour, HookKind, OnFailure, MAX_HOOK_TIMEOUT_MS,
};
use crate::engine::WebhookEngine;
use crate::features::Feature;
use crate::filters::Filters;
use crate::format::rfc3339;
use crate::url_rules::{broken_rules, check_url, effective_port, port_prefix_conflict};

/// An endpoint as the API shows it: its settings and its health together.
#[derive(Serialize, ToSchema)]
pub(super) struct EndpointView {
    id: String,
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
    /// Only on create and rotate.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// Only on create, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    sign_token: Option<String>,
    /// Only on rotate: until when the previous secret still signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_valid_until: Option<String>,
    /// Only on `GET .../{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<QueueView>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct InactiveEvent {
    #[schema(value_type = String)]
    event: EventKind,
    /// The feature switch it waits for.
    feature: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct GapView {
    first_position: u64,
    last_position: u64,
    count: u64,
    from: String,
    until: String,
}

/// Where the endpoint stands in the event log and its retry queue.
#[derive(Serialize, ToSchema)]
pub(super) struct QueueView {
    events_behind: u64,
    retrying: u64,
    dead_letters: u64,
    oldest_retrying_event_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct EndpointList {
    data: Vec<EndpointView>,
}

impl EndpointView {
    /// The view of `e`; the secret and the sign token only when `with_secret`.
    fn of(engine: &WebhookEngine, e: &Endpoint, with_secret: bool) -> EndpointView {
        let features = engine.features();
        let health = engine.health(&e.id);
        EndpointView {
            id: e.id.clone(),
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
            secret: with_secret.then(|| e.secret.clone()),
            sign_token: e.sign_token.clone().filter(|_| with_secret),
            previous_secret_valid_until: None,
            queue: None,
        }
    }
}

fn writable(e: &Endpoint) -> ApiResult<()> {
    if e.read_only {
        return Err(V1Error(ApiError {
            status: StatusCode::CONFLICT,
            code: "endpoint_read_only",
            message: "this endpoint is defined in the config file; change it there".into(),
            field: None,
        }));
    }
    Ok(())
}

/// What an endpoint's `events` select.
struct Selection {
    kinds: Vec<EventKind>,
    /// The before-send hooks it answers (`message.before_send.person`/`group`, or Tencent's
    /// `C2C`/`Group.CallbackBeforeSendMsg`).
    hooks: Vec<HookKind>,
    /// Foreign events by name (`tencent.<Command>`, `wukongim.<event>`, or a prefix ending in `*`).
    foreign: Vec<String>,
}

/// The longest foreign event name (or prefix) an endpoint selects, in bytes.
const MAX_FOREIGN_NAME_BYTES: usize = 128;

/// A foreign event's name or prefix: `tencent.` or `wukongim.` and letters, digits, `.`, `_`, `-`,
/// optionally ending in `*`.
fn foreign_name(n: &str) -> Option<String> {
    let rest = n
        .strip_prefix("tencent.")
        .or_else(|| n.strip_prefix("wukongim."))?;
    let rest = rest.strip_suffix('*').unwrap_or(rest);
    let fine = rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (fine && n.len() <= MAX_FOREIGN_NAME_BYTES).then(|| n.to_string())
}

fn check_events(names: &[String], flavour: Flavour) -> ApiResult<Selection> {
    let mut hooks: Vec<HookKind> = Vec::new();
    let mut foreign: Vec<String> = Vec::new();
    let mut rest = Vec::new();
    for n in names {
        match HookKind::from_name(n) {
            Some(h) if !hooks.contains(&h) => hooks.push(h),
            Some(_) => {}
            None if catalog::resolve(n).is_none() && foreign_name(n).is_some() => {
                if !foreign.contains(n) {
                    foreign.push(n.clone());
                }
            }
            // A tencent endpoint names Tencent's other commands as Tencent does (`Sns.CallbackFriendAdd`).
            None if flavour == Flavour::Tencent
                && catalog::resolve(n).is_none()
                && n.contains(".Callback")
                && foreign_name(&format!("tencent.{n}")).is_some() =>
            {
                let name = format!("tencent.{n}");
                if !foreign.contains(&name) {
                    foreign.push(name);
                }
            }
            None => rest.push(n.clone()),
        }
    }
    if !hooks.is_empty() && flavour == Flavour::Wukongim {
        return Err(bad(
            "events",
            "before_send_flavour",
            "before-send hooks need the tencent or standard flavour (WuKongIM has none)",
        ));
    }
    let kinds = resolve_events(&rest).map_err(|n| {
        bad(
            "events",
            "event_unknown",
            format!("unknown event {n:?}; see GET /v1/webhooks/event-types"),
        )
    })?;
    Ok(Selection {
        kinds,
        hooks,
        foreign,
    })
}

/// An endpoint's `filters`, checked; a broken one names its field (`filters.<list>`).
fn check_filters(filters: Filters) -> ApiResult<Filters> {
    filters
        .check()
        .map_err(|(field, message)| bad(&format!("filters.{field}"), "filter_invalid", message))?;
    Ok(filters)
}

/// The longest list of `sources` an endpoint keeps.
const MAX_SOURCES: usize = 64;

/// An endpoint's `sources`: relay source ids or `local`, at most [`MAX_SOURCES`].
fn check_sources(sources: Vec<String>) -> ApiResult<Vec<String>> {
    if sources.len() > MAX_SOURCES {
        return Err(bad(
            "sources",
            "too_many_sources",
            format!("sources lists at most {MAX_SOURCES} sources"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for s in sources {
        let fine = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !fine {
            return Err(bad(
                "sources",
                "source_invalid",
                format!("{s:?} is not a source id (relay source ids, or \"local\")"),
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn check_hook_timeout(timeout_ms: Option<u64>) -> ApiResult<()> {
    if timeout_ms.is_some_and(|t| !(1..=MAX_HOOK_TIMEOUT_MS).contains(&t)) {
        return Err(bad(
            "hook_timeout_ms",
            "hook_timeout_out_of_range",
            format!("hook_timeout_ms must be between 1 and {MAX_HOOK_TIMEOUT_MS}"),
        ));
    }
    Ok(())
}

fn check_limits(
    timeout_ms: Option<u64>,
    max_in_flight: Option<u32>,
    rate: Option<u32>,
) -> ApiResult<()> {
    if timeout_ms.is_some_and(|t| !(100..=60_000).contains(&t)) {
        return Err(bad(
            "timeout_ms",
            "timeout_out_of_range",
            "timeout_ms must be between 100 and 60000",
        ));
    }
    if max_in_flight.is_some_and(|m| !(1..=1024).contains(&m)) {
        return Err(bad(
            "max_in_flight",
            "max_in_flight_out_of_range",
            "max_in_flight must be between 1 and 1024",
        ));
    }
    if rate == Some(0) {
        return Err(bad(
            "rate_limit_per_s",
            "rate_limit_out_of_range",
            "rate_limit_per_s must be at least 1 (or null)",
        ));
    }
    Ok(())
}

fn url_checked(url: &str) -> ApiResult<url::Url> {
    check_url(url).map_err(|e| bad("url", e.code, e.message))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateReq {
    url: String,
    #[serde(default = "standard")]
    flavour: Flavour,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    max_in_flight: Option<u32>,
    #[serde(default)]
    rate_limit_per_s: Option<u32>,
    /// The tencent flavour's callback token (`Sign`).
    #[serde(default)]
    sign_token: Option<String>,
    #[serde(default)]
    hook_timeout_ms: Option<u64>,
    #[serde(default)]
    on_failure: Option<OnFailure>,
    /// Only events from these sources (relay source ids, `local` for this server's IM core); empty
    /// or missing = all. A Go backend's `null` is empty.
    #[serde(default, deserialize_with = "crate::nullable::null_as_empty")]
    sources: Vec<String>,
    /// Which messages, channels and users it takes; missing or `null`: all.
    #[serde(default)]
    filters: Option<Filters>,
    /// Where it starts reading the event log: `now` (default), `oldest` (everything the log still
    /// holds), or an RFC 3339 time.
    #[serde(default)]
    start_from: Option<String>,
}

fn standard() -> Flavour {
    Flavour::Standard
}

/// Creates an endpoint; the answer is the only one that shows its `secret` (and `sign_token`).
#[utoipa::path(post, path = "/v1/webhooks/endpoints", tag = "webhooks",
    request_body = CreateReq,
    responses((status = 201, body = EndpointView), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn create(
    State(engine): State<WebhookEngine>,
    V1Json(req): V1Json<CreateReq>,
) -> ApiResult<(StatusCode, Json<EndpointView>)> {
    url_checked(&req.url)?;
    check_description(&req.description)?;
    if let Some(token) = &req.sign_token {
        check_sign_token(token)?;
    }
    let selection = check_events(&req.events, req.flavour)?;
    let sources = check_sources(req.sources)?;
    let filters = check_filters(req.filters.unwrap_or_default())?;
    let start = super::seek::start_from("start_from", req.start_from.as_deref().unwrap_or("now"))?;
    check_limits(req.timeout_ms, req.max_in_flight, req.rate_limit_per_s)?;
    check_hook_timeout(req.hook_timeout_ms)?;
    let secret = match req.secret {
        Some(s) => {
            check_secret(&s).map_err(|e| bad("secret", e.code, e.message))?;
            s
        }
        None => new_secret(),
    };
    let mut e = Endpoint::new(new_id("ep"), req.url, req.flavour, selection.kinds, secret);
    e.foreign = selection.foreign;
    e.sources = sources;
    e.filters = filters;
    e.enabled = req.enabled.unwrap_or(true);
    if !e.enabled {
        e.disabled_at = Some(e.created_at);
    }
    e.description = req.description;
    e.timeout_ms = req.timeout_ms.unwrap_or(e.timeout_ms);
    e.max_in_flight = req.max_in_flight.unwrap_or(e.max_in_flight);
    e.rate_limit_per_s = req.rate_limit_per_s;
    e.sign_token = req.sign_token;
    e.before_send = selection.hooks;
    e.message_channel_types = catalog::message_channel_types(&req.events);
    e.hook_timeout_ms = req.hook_timeout_ms.unwrap_or(e.hook_timeout_ms);
    e.on_failure = req.on_failure.unwrap_or(e.on_failure);
    engine
        .create_from(e.clone(), start)
        .await
        .map_err(engine_error)?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointView::of(&engine, &e, true)),
    ))
}

/// Every endpoint.
#[utoipa::path(get, path = "/v1/webhooks/endpoints", tag = "webhooks",
    responses((status = 200, body = EndpointList), (status = 500, body = V1ErrorBody)))]
pub(super) async fn list(State(engine): State<WebhookEngine>) -> ApiResult<Json<EndpointList>> {
    engine.catch_up().await.map_err(engine_error)?;
    let data = engine
        .endpoints()
        .iter()
        .map(|e| EndpointView::of(&engine, e, false))
        .collect();
    Ok(Json(EndpointList { data }))
}

/// One endpoint, with where it stands in the event log and its retry queue.
#[utoipa::path(get, path = "/v1/webhooks/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, body = EndpointView), (status = 404, body = V1ErrorBody)))]
pub(super) async fn show(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    let e = find(&engine, &id).await?;
    let mut v = EndpointView::of(&engine, &e, false);
    let (pending, dead, oldest) = engine
        .store()
        .pending_summary(&id)
        .await
        .map_err(store_error)?;
    let acked = engine
        .log()
        .consumer_position(&e.consumer_name())
        .await
        .unwrap_or(0);
    v.queue = Some(QueueView {
        events_behind: engine.log().head().saturating_sub(acked),
        retrying: pending,
        dead_letters: dead,
        oldest_retrying_event_at: oldest.map(rfc3339),
    });
    Ok(Json(v))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PatchReq {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    flavour: Option<Flavour>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    max_in_flight: Option<u32>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "crate::nullable::some_nullable")]
    #[schema(value_type = Option<u32>)]
    rate_limit_per_s: Option<Option<u32>>,
    /// `null` removes the token.
    #[serde(default, deserialize_with = "crate::nullable::some_nullable")]
    #[schema(value_type = Option<String>)]
    sign_token: Option<Option<String>>,
    #[serde(default)]
    hook_timeout_ms: Option<u64>,
    #[serde(default)]
    on_failure: Option<OnFailure>,
    #[serde(default)]
    confirm_port_change: bool,
    /// `null` or `[]`: every source.
    #[serde(default, deserialize_with = "crate::nullable::some_nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    sources: Option<Option<Vec<String>>>,
    /// Replaces every filter; `null` removes them all.
    #[serde(default, deserialize_with = "crate::nullable::some_nullable")]
    #[schema(value_type = Option<Filters>)]
    filters: Option<Option<Filters>>,
}

/// Changes an endpoint's settings (only those given).
#[utoipa::path(patch, path = "/v1/webhooks/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = PatchReq,
    responses((status = 200, body = EndpointView), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn patch(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    V1Json(req): V1Json<PatchReq>,
) -> ApiResult<Json<EndpointView>> {
    let current = find(&engine, &id).await?;
    writable(&current)?;
    let mut e = (*current).clone();
    if let Some(url) = req.url {
        let new = url_checked(&url)?;
        if let Some((old, port)) = port_prefix_change(&e.url, &new) {
            if !req.confirm_port_change {
                return Err(V1Error(ApiError {
                    status: StatusCode::CONFLICT,
                    code: "port_prefix_conflict",
                    message: format!(
                        "the port changes from {old} to {port}, and one is a prefix of the other, which is a \
                         common typo; send \"confirm_port_change\": true if the change is meant"
                    ),
                    field: Some("url".into()),
                }));
            }
        }
        e.url = url;
    }
    if let Some(f) = req.flavour {
        e.flavour = f;
    }
    if let Some(token) = req.sign_token {
        if let Some(t) = &token {
            check_sign_token(t)?;
        }
        e.sign_token = token;
    }
    if let Some(events) = req.events {
        let selection = check_events(&events, e.flavour)?;
        (e.events, e.before_send, e.foreign) =
            (selection.kinds, selection.hooks, selection.foreign);
        e.message_channel_types = catalog::message_channel_types(&events);
    } else if !e.before_send.is_empty() && e.flavour == Flavour::Wukongim {
        return Err(bad(
            "flavour",
            "before_send_flavour",
            "before-send hooks need the tencent or standard flavour (WuKongIM has none)",
        ));
    }
    if let Some(sources) = req.sources {
        e.sources = check_sources(sources.unwrap_or_default())?;
    }
    if let Some(filters) = req.filters {
        e.filters = check_filters(filters.unwrap_or_default())?;
    }
    check_hook_timeout(req.hook_timeout_ms)?;
    if let Some(t) = req.hook_timeout_ms {
        e.hook_timeout_ms = t;
    }
    if let Some(f) = req.on_failure {
        e.on_failure = f;
    }
    check_limits(
        req.timeout_ms,
        req.max_in_flight,
        req.rate_limit_per_s.flatten(),
    )?;
    if let Some(enabled) = req.enabled {
        if enabled {
            e.disabled_at = None;
        } else if e.enabled {
            e.disabled_at = Some(now_ms());
        }
        e.enabled = enabled;
    }
    if let Some(d) = req.description {
        check_description(&d)?;
        e.description = d;
    }
    if let Some(t) = req.timeout_ms {
        e.timeout_ms = t;
    }
    if let Some(m) = req.max_in_flight {
        e.max_in_flight = m;
    }
    if let Some(r) = req.rate_limit_per_s {
        e.rate_limit_per_s = r;
    }
    e.updated_at = now_ms();
    engine
        .update(e.clone(), req.enabled == Some(true))
        .await
        .map_err(engine_error)?;
    Ok(Json(EndpointView::of(&engine, &e, false)))
}

/// Deletes an endpoint with its cursor, retries and attempts.
#[utoipa::path(delete, path = "/v1/webhooks/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 204), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn remove(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    writable(&*find(&engine, &id).await?)?;
    engine.delete(&id).await.map_err(engine_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long a rotated-out secret still signs.
const ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Replaces the secret; the previous one still signs for 24 hours. The answer shows the new secret.
#[utoipa::path(post, path = "/v1/webhooks/endpoints/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, body = EndpointView), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn rotate_secret(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    let current = find(&engine, &id).await?;
    writable(&current)?;
    let mut e = (*current).clone();
    let until = now_ms() + ROTATION_GRACE.as_millis() as i64;
    e.previous_secret = Some((std::mem::replace(&mut e.secret, new_secret()), until));
    e.updated_at = now_ms();
    engine
        .update(e.clone(), false)
        .await
        .map_err(engine_error)?;
    let mut v = EndpointView::of(&engine, &e, true);
    v.previous_secret_valid_until = Some(rfc3339(until));
    Ok(Json(v))
}

/// The ports (old, new) when changing `old_url` to `new` hits the port-prefix rule.
fn port_prefix_change(old_url: &str, new: &url::Url) -> Option<(u16, u16)> {
    let old = url::Url::parse(old_url)
        .map(|u| effective_port(&u))
        .unwrap_or(0);
    let port = effective_port(new);
    port_prefix_conflict(old, port).then_some((old, port))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UrlCheckReq {
    url: String,
    /// The endpoint whose URL would change: the port-prefix rule is checked against its URL.
    #[serde(default)]
    endpoint_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct UrlCheck {
    /// No rule is broken.
    valid: bool,
    /// One entry per broken rule.
    errors: Vec<BrokenRule>,
    /// Set when changing the endpoint's URL to this one needs `confirm_port_change`.
    confirm_port_change: Option<PortChange>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct BrokenRule {
    code: &'static str,
    message: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct PortChange {
    from: u16,
    to: u16,
}

/// Every URL rule `url` breaks (one entry per rule), and whether changing the endpoint's URL to it
/// needs `confirm_port_change`: what the console shows as the operator types.
#[utoipa::path(post, path = "/v1/webhooks/url-check", tag = "webhooks",
    request_body = UrlCheckReq,
    responses((status = 200, body = UrlCheck), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn url_check(
    State(engine): State<WebhookEngine>,
    V1Json(req): V1Json<UrlCheckReq>,
) -> ApiResult<Json<UrlCheck>> {
    let errors: Vec<BrokenRule> = broken_rules(&req.url)
        .into_iter()
        .map(|e| BrokenRule {
            code: e.code,
            message: e.message,
        })
        .collect();
    let port_change = match (&req.endpoint_id, check_url(&req.url)) {
        (Some(id), Ok(new)) => port_prefix_change(&find(&engine, id).await?.url, &new),
        _ => None,
    };
    Ok(Json(UrlCheck {
        valid: errors.is_empty(),
        errors,
        confirm_port_change: port_change.map(|(from, to)| PortChange { from, to }),
    }))
}
