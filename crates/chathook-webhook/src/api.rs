//! The webhook admin API under `/v1` (admin key required, applied by the binary): endpoints, secrets,
//! tests, attempts, dead letters and replays, stats, event types and feature switches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chathook_events::EventKind;
use chathook_http::{ApiError, V1Error, V1Json};
use chathook_store::{AttemptQuery, AttemptRecord, PendingDelivery, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::catalog;
use crate::config_endpoints::resolve_events;
use crate::dispatcher::attempt::{latency_ms, Delivery};
use crate::dispatcher::now_ms;
use crate::endpoint::{
    check_secret, check_url, effective_port, new_id, new_secret, port_prefix_conflict, Endpoint,
    Flavour, HookKind, OnFailure, MAX_HOOK_TIMEOUT_MS,
};
use crate::engine::{EngineError, WebhookEngine};
use crate::features::{Feature, Features};
use crate::format::{self, rfc3339};

type ApiResult<T> = Result<T, V1Error>;

/// Every route of [`router`], as (method, path), for tests that must visit each one.
pub const ROUTES: [(&str, &str); 15] = [
    ("POST", "/v1/webhooks/endpoints"),
    ("GET", "/v1/webhooks/endpoints"),
    ("GET", "/v1/webhooks/endpoints/{id}"),
    ("PATCH", "/v1/webhooks/endpoints/{id}"),
    ("DELETE", "/v1/webhooks/endpoints/{id}"),
    ("POST", "/v1/webhooks/endpoints/{id}/rotate-secret"),
    ("POST", "/v1/webhooks/endpoints/{id}/test"),
    ("GET", "/v1/webhooks/endpoints/{id}/attempts"),
    ("GET", "/v1/webhooks/endpoints/{id}/dead-letters"),
    (
        "POST",
        "/v1/webhooks/endpoints/{id}/dead-letters/{delivery_id}/replay",
    ),
    ("POST", "/v1/webhooks/endpoints/{id}/replay"),
    ("GET", "/v1/webhooks/endpoints/{id}/stats"),
    ("GET", "/v1/webhooks/event-types"),
    ("GET", "/v1/features"),
    ("PUT", "/v1/features"),
];

/// The webhook routes.
pub fn router(engine: WebhookEngine) -> Router {
    Router::new()
        .route("/v1/webhooks/endpoints", post(create).get(list))
        .route(
            "/v1/webhooks/endpoints/{id}",
            get(show).patch(patch).delete(remove),
        )
        .route(
            "/v1/webhooks/endpoints/{id}/rotate-secret",
            post(rotate_secret),
        )
        .route("/v1/webhooks/endpoints/{id}/test", post(test))
        .route("/v1/webhooks/endpoints/{id}/attempts", get(attempts))
        .route(
            "/v1/webhooks/endpoints/{id}/dead-letters",
            get(dead_letters),
        )
        .route(
            "/v1/webhooks/endpoints/{id}/dead-letters/{delivery_id}/replay",
            post(replay_one),
        )
        .route("/v1/webhooks/endpoints/{id}/replay", post(replay_since))
        .route("/v1/webhooks/endpoints/{id}/stats", get(stats))
        .route("/v1/webhooks/event-types", get(event_types))
        .route("/v1/features", get(get_features).put(put_features))
        .with_state(engine)
}

fn engine_error(e: EngineError) -> V1Error {
    if let EngineError::HookTaken { .. } = &e {
        return V1Error(ApiError {
            status: StatusCode::CONFLICT,
            code: "before_send_taken",
            message: e.to_string(),
            field: Some("events".into()),
        });
    }
    tracing::error!(error = %e, "webhook engine error in an API call");
    let status = match &e {
        EngineError::Store(StoreError::Unwritable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    V1Error(ApiError {
        status,
        code: "internal_error",
        message: "the server could not complete the request".into(),
        field: None,
    })
}

fn store_error(e: StoreError) -> V1Error {
    engine_error(EngineError::Store(e))
}

fn bad(field: &str, code: &'static str, message: impl Into<String>) -> V1Error {
    V1Error(ApiError::field(field, code, message))
}

/// An endpoint as the API shows it, its settings and its health together; the secret only when
/// `with_secret`.
fn endpoint_json(engine: &WebhookEngine, e: &Endpoint, with_secret: bool) -> Value {
    let features = engine.features();
    let health = engine.health(&e.id);
    let inactive: Vec<Value> = e
        .events
        .iter()
        .filter(|kind| !features.allows(**kind))
        .map(|kind| json!({"event": kind, "feature": catalog::entry(*kind).feature.map(Feature::name)}))
        .collect();
    let mut v = json!({
        "id": e.id,
        "url": e.url,
        "flavour": e.flavour,
        "events": e.events,
        "inactive_events": inactive,
        "enabled": health.active(e),
        "disabled_reason": health.server_disabled.as_ref().map(|d| &d.reason),
        "description": e.description,
        "timeout_ms": e.timeout_ms,
        "max_in_flight": e.max_in_flight,
        "rate_limit_per_s": e.rate_limit_per_s,
        "created_at": rfc3339(e.created_at),
        "updated_at": rfc3339(e.updated_at),
        "read_only": e.read_only,
        "failing_since": health.failing_since.map(rfc3339),
        "disabled_at": health.disabled_since(e).map(rfc3339),
        // false once disabled for webhook.hold_disabled: retention no longer waits for it
        "holds_event_log": health.log_released.is_none(),
        "gap": health.gap.as_ref().map(|g| json!({
            "first_position": g.first_position,
            "last_position": g.last_position,
            "count": g.count,
            "from": rfc3339(g.from_ms),
            "until": rfc3339(g.until_ms),
        })),
    });
    v["sign_token_set"] = json!(e.sign_token.is_some());
    v["before_send"] = json!(e.before_send);
    v["message_channel_types"] = json!(e.message_channel_types);
    v["hook_timeout_ms"] = json!(e.hook_timeout_ms);
    v["on_failure"] = json!(e.on_failure);
    if with_secret {
        v["secret"] = json!(e.secret);
        if let Some(token) = &e.sign_token {
            v["sign_token"] = json!(token);
        }
    }
    v
}

fn find(engine: &WebhookEngine, id: &str) -> ApiResult<Arc<Endpoint>> {
    engine.endpoint(id).ok_or_else(|| {
        V1Error(ApiError::not_found(
            "endpoint_not_found",
            format!("no endpoint {id}"),
        ))
    })
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

/// Tencent's callback token: 1 to 128 printable ASCII characters, as its console takes.
fn check_sign_token(token: &str) -> ApiResult<()> {
    let printable = token.bytes().all(|b| b.is_ascii_graphic());
    if token.is_empty() || token.len() > 128 || !printable {
        return Err(bad(
            "sign_token",
            "sign_token_invalid",
            "sign_token must be 1 to 128 printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// An endpoint's `events`: the event kinds it receives, and the before-send hooks it answers
/// (`message.before_send.person`/`group`, or Tencent's `C2C`/`Group.CallbackBeforeSendMsg`).
fn check_events(names: &[String], flavour: Flavour) -> ApiResult<(Vec<EventKind>, Vec<HookKind>)> {
    let mut hooks: Vec<HookKind> = Vec::new();
    let mut rest = Vec::new();
    for n in names {
        match HookKind::from_name(n) {
            Some(h) if !hooks.contains(&h) => hooks.push(h),
            Some(_) => {}
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
    Ok((kinds, hooks))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateReq {
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
}

fn standard() -> Flavour {
    Flavour::Standard
}

async fn create(
    State(engine): State<WebhookEngine>,
    V1Json(req): V1Json<CreateReq>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    url_checked(&req.url)?;
    if let Some(token) = &req.sign_token {
        check_sign_token(token)?;
    }
    let (events, hooks) = check_events(&req.events, req.flavour)?;
    check_limits(req.timeout_ms, req.max_in_flight, req.rate_limit_per_s)?;
    check_hook_timeout(req.hook_timeout_ms)?;
    let secret = match req.secret {
        Some(s) => {
            check_secret(&s).map_err(|e| bad("secret", e.code, e.message))?;
            s
        }
        None => new_secret(),
    };
    let mut e = Endpoint::new(new_id("ep"), req.url, req.flavour, events, secret);
    e.enabled = req.enabled.unwrap_or(true);
    if !e.enabled {
        e.disabled_at = Some(e.created_at);
    }
    e.description = req.description;
    e.timeout_ms = req.timeout_ms.unwrap_or(e.timeout_ms);
    e.max_in_flight = req.max_in_flight.unwrap_or(e.max_in_flight);
    e.rate_limit_per_s = req.rate_limit_per_s;
    e.sign_token = req.sign_token;
    e.before_send = hooks;
    e.message_channel_types = catalog::message_channel_types(&req.events);
    e.hook_timeout_ms = req.hook_timeout_ms.unwrap_or(e.hook_timeout_ms);
    e.on_failure = req.on_failure.unwrap_or(e.on_failure);
    engine.create(e.clone()).await.map_err(engine_error)?;
    Ok((StatusCode::CREATED, Json(endpoint_json(&engine, &e, true))))
}

async fn list(State(engine): State<WebhookEngine>) -> Json<Value> {
    let items: Vec<Value> = engine
        .endpoints()
        .iter()
        .map(|e| endpoint_json(&engine, e, false))
        .collect();
    Json(json!({"data": items}))
}

async fn show(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let e = find(&engine, &id)?;
    let mut v = endpoint_json(&engine, &e, false);
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
    v["queue"] = json!({
        "events_behind": engine.log().head().saturating_sub(acked),
        "retrying": pending,
        "dead_letters": dead,
        "oldest_retrying_event_at": oldest.map(rfc3339),
    });
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchReq {
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
    #[serde(default, deserialize_with = "some_nullable")]
    rate_limit_per_s: Option<Option<u32>>,
    /// `null` removes the token.
    #[serde(default, deserialize_with = "some_nullable")]
    sign_token: Option<Option<String>>,
    #[serde(default)]
    hook_timeout_ms: Option<u64>,
    #[serde(default)]
    on_failure: Option<OnFailure>,
    #[serde(default)]
    confirm_port_change: bool,
}

fn some_nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

async fn patch(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    V1Json(req): V1Json<PatchReq>,
) -> ApiResult<Json<Value>> {
    let current = find(&engine, &id)?;
    writable(&current)?;
    let mut e = (*current).clone();
    if let Some(url) = req.url {
        let new = url_checked(&url)?;
        let old = url::Url::parse(&e.url)
            .map(|u| effective_port(&u))
            .unwrap_or(0);
        let port = effective_port(&new);
        if port_prefix_conflict(old, port) && !req.confirm_port_change {
            return Err(V1Error(ApiError {
                status: StatusCode::CONFLICT,
                code: "port_prefix_conflict",
                message: format!(
                    "the port changes from {old} to {port}, and one is a prefix of the other, which is a common \
                     typo; send \"confirm_port_change\": true if the change is meant"
                ),
                field: Some("url".into()),
            }));
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
        (e.events, e.before_send) = check_events(&events, e.flavour)?;
        e.message_channel_types = catalog::message_channel_types(&events);
    } else if !e.before_send.is_empty() && e.flavour == Flavour::Wukongim {
        return Err(bad(
            "flavour",
            "before_send_flavour",
            "before-send hooks need the tencent or standard flavour (WuKongIM has none)",
        ));
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
    Ok(Json(endpoint_json(&engine, &e, false)))
}

async fn remove(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    writable(&*find(&engine, &id)?)?;
    engine.delete(&id).await.map_err(engine_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long a rotated-out secret still signs.
const ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);

async fn rotate_secret(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let current = find(&engine, &id)?;
    writable(&current)?;
    let mut e = (*current).clone();
    let until = now_ms() + ROTATION_GRACE.as_millis() as i64;
    e.previous_secret = Some((std::mem::replace(&mut e.secret, new_secret()), until));
    e.updated_at = now_ms();
    engine
        .update(e.clone(), false)
        .await
        .map_err(engine_error)?;
    let mut v = endpoint_json(&engine, &e, true);
    v["previous_secret_valid_until"] = json!(rfc3339(until));
    Ok(Json(v))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TestReq {
    #[serde(default)]
    event: Option<String>,
}

async fn test(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let e = find(&engine, &id)?;
    let req: TestReq = if body.iter().all(u8::is_ascii_whitespace) {
        TestReq::default()
    } else {
        chathook_http::parse(&body).map_err(V1Error)?
    };
    let name = req.event.unwrap_or_else(|| "message.sent".into());
    let Some(kind) = EventKind::from_name(&name) else {
        return Err(bad(
            "event",
            "event_unknown",
            format!("unknown event {name:?}"),
        ));
    };
    let sample = catalog::sample(kind);
    let Some(rendered) =
        format::render_sample(e.flavour, &sample, engine.config().tencent_sdk_app_id)
    else {
        return Err(bad(
            "event",
            "event_not_in_flavour",
            format!("the endpoint's flavour does not send {name}"),
        ));
    };
    let delivery = Delivery::one_off(new_id("test"), rendered);
    let (at, result) = engine.send_once(&e, &delivery).await;
    Ok(Json(json!({
        "delivery_id": delivery.id,
        "event": delivery.event,
        "at": rfc3339(at),
        "success": result.success,
        "status": result.status,
        "latency_ms": latency_ms(result.latency),
        "error": result.error,
        "response": result.response,
    })))
}

fn attempt_json(id: i64, a: &AttemptRecord) -> Value {
    json!({
        "id": id,
        "delivery_id": a.delivery_id,
        "event": a.event,
        "at": rfc3339(a.at_ms),
        "success": a.success,
        "status": a.status,
        "latency_ms": a.latency_ms,
        "error": a.error,
        "response": a.response,
    })
}

#[derive(Deserialize)]
struct AttemptsQuery {
    status: Option<String>,
    event: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

async fn attempts(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    Query(q): Query<AttemptsQuery>,
) -> ApiResult<Json<Value>> {
    find(&engine, &id)?;
    let success = match q.status.as_deref() {
        None | Some("") => None,
        Some("success") => Some(true),
        Some("failure") => Some(false),
        Some(other) => {
            return Err(bad(
                "status",
                "status_invalid",
                format!("status must be success or failure, not {other:?}"),
            ))
        }
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(bad(
            "limit",
            "limit_out_of_range",
            "limit must be between 1 and 1000",
        ));
    }
    let rows = engine
        .store()
        .attempts(AttemptQuery {
            endpoint_id: id,
            success,
            event: q.event.filter(|e| !e.is_empty()),
            before_id: q.before,
            since_ms: None,
            limit,
        })
        .await
        .map_err(store_error)?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.0))
        .flatten();
    let data: Vec<Value> = rows.iter().map(|(i, a)| attempt_json(*i, a)).collect();
    Ok(Json(json!({"data": data, "next_before": next})))
}

fn dead_letter_json(d: &PendingDelivery) -> Value {
    json!({
        "delivery_id": d.delivery_id,
        "event": d.event,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "event_at": rfc3339(d.event_at_ms),
        "dead_lettered_at": rfc3339(d.dead_at_ms),
        "body": String::from_utf8_lossy(&d.body),
    })
}

async fn dead_letters(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    find(&engine, &id)?;
    let rows = engine
        .store()
        .dead_letters(&id, 1000)
        .await
        .map_err(store_error)?;
    Ok(Json(
        json!({"data": rows.iter().map(dead_letter_json).collect::<Vec<_>>()}),
    ))
}

async fn replay_one(
    State(engine): State<WebhookEngine>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    find(&engine, &id)?;
    let n = engine
        .store()
        .revive(&id, Some(&delivery_id), 0, now_ms())
        .await
        .map_err(store_error)?;
    if n == 0 {
        return Err(V1Error(ApiError::not_found(
            "dead_letter_not_found",
            format!("no dead letter {delivery_id} on this endpoint"),
        )));
    }
    engine.wake(&id);
    Ok((StatusCode::ACCEPTED, Json(json!({"replayed": n}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayReq {
    since: String,
}

async fn replay_since(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    V1Json(req): V1Json<ReplayReq>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    find(&engine, &id)?;
    let since = humantime_serde::re::humantime::parse_rfc3339_weak(&req.since).map_err(|e| {
        bad(
            "since",
            "since_invalid",
            format!("since must be an RFC 3339 UTC time: {e}"),
        )
    })?;
    let since_ms = since
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let n = engine
        .store()
        .revive(&id, None, since_ms, now_ms())
        .await
        .map_err(store_error)?;
    engine.wake(&id);
    Ok((StatusCode::ACCEPTED, Json(json!({"replayed": n}))))
}

#[derive(Deserialize)]
struct StatsQuery {
    window: Option<String>,
}

fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i])
}

async fn stats(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<Value>> {
    find(&engine, &id)?;
    let window = match q.window.as_deref() {
        None | Some("") => Duration::from_secs(3600),
        Some(w) => humantime_serde::re::humantime::parse_duration(w).map_err(|e| {
            bad(
                "window",
                "window_invalid",
                format!("window must be a duration like 1h: {e}"),
            )
        })?,
    };
    if window > Duration::from_secs(31 * 24 * 3600) || window.is_zero() {
        return Err(bad(
            "window",
            "window_out_of_range",
            "window must be between 1s and 31 days",
        ));
    }
    let since = now_ms() - window.as_millis() as i64;
    let rows = engine
        .store()
        .attempts(AttemptQuery {
            endpoint_id: id,
            since_ms: Some(since),
            limit: 500_000,
            ..Default::default()
        })
        .await
        .map_err(store_error)?;
    let total = rows.len();
    let ok = rows.iter().filter(|(_, a)| a.success).count();
    let mut latencies: Vec<u32> = rows.iter().map(|(_, a)| a.latency_ms).collect();
    latencies.sort_unstable();
    let mut per_minute: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for (_, a) in &rows {
        let slot = per_minute.entry(a.at_ms / 60_000 * 60_000).or_default();
        if a.success {
            slot.0 += 1;
        } else {
            slot.1 += 1;
        }
    }
    let minutes: Vec<Value> = per_minute
        .iter()
        .map(|(m, (s, f))| json!({"minute": rfc3339(*m), "success": s, "failure": f}))
        .collect();
    Ok(Json(json!({
        "window_seconds": window.as_secs(),
        "attempts": total,
        "successes": ok,
        "failures": total - ok,
        "success_rate": if total == 0 { Value::Null } else { json!(ok as f64 / total as f64) },
        "latency_ms": {"p50": percentile(&latencies, 0.5), "p95": percentile(&latencies, 0.95),
                       "p99": percentile(&latencies, 0.99)},
        "per_minute": minutes,
    })))
}

async fn event_types() -> Json<Value> {
    Json(json!({"data": catalog::listing()}))
}

async fn get_features(State(engine): State<WebhookEngine>) -> Json<Value> {
    Json(json!(engine.features()))
}

async fn put_features(
    State(engine): State<WebhookEngine>,
    V1Json(features): V1Json<Features>,
) -> ApiResult<Json<Value>> {
    engine.set_features(features).await.map_err(engine_error)?;
    Ok(Json(json!(features)))
}
