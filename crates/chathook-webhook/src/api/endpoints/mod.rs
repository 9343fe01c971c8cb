//! Endpoints: create, list, show, change, delete, and rotate the secret. The parts: `checks` (what
//! every setting passes), `view` (what answers show), `url_check` (the URL rules as the console shows
//! them).

mod checks;
mod url_check;
mod view;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chathook_http::{ApiError, V1Error, V1ErrorBody, V1Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{bad, check_description, check_sign_token, engine_error, find, store_error, ApiResult};
use crate::catalog;
use crate::clock::now_ms;
use crate::endpoint::{
    check_secret, new_id, new_poll_token, new_secret, Endpoint, EndpointKind, Flavour, OnFailure,
};
use crate::engine::WebhookEngine;
use crate::filters::Filters;
use crate::format::rfc3339;
use crate::receiver_auth::{BasicAuth, ClientTls, ReceiverAuth};
use checks::{
    check_auth, check_events, check_filters, check_hook_timeout, check_limits, check_operational,
    check_polling, check_retry_schedule, check_sources, url_checked,
};
use url_check::port_prefix_change;
pub(super) use url_check::{__path_url_check, url_check};
use view::{EndpointList, EndpointView, QueueView};

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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateReq {
    /// Required for a push endpoint; none for a polling one.
    #[serde(default)]
    url: String,
    /// `push` (default) or `polling` (no URL: its consumer fetches its events with its poll token).
    #[serde(default)]
    kind: EndpointKind,
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
    /// Static headers sent with every request (values are secrets: answers show them masked).
    #[serde(default, deserialize_with = "crate::nullable::null_as_empty")]
    headers: BTreeMap<String, String>,
    /// HTTP basic credentials sent with every request.
    #[serde(default)]
    basic_auth: Option<BasicAuth>,
    /// A client certificate and key for mutual TLS, and a CA to trust (PEM; https:// URLs only).
    #[serde(default)]
    tls: Option<ClientTls>,
    /// Seconds before each retry after a failure (`null`: the server's `webhook.retry_schedule`).
    #[serde(default)]
    retry_schedule: Option<Vec<u64>>,
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
    if req.kind == EndpointKind::Push || !req.url.is_empty() {
        url_checked(&req.url, engine.config().https_only)?;
    }
    check_description(&req.description)?;
    let auth = ReceiverAuth {
        headers: req.headers,
        basic_auth: req.basic_auth,
        tls: req.tls,
    };
    let auth = check_auth(auth, &ReceiverAuth::default(), &req.url)?;
    if let Some(schedule) = &req.retry_schedule {
        check_retry_schedule(schedule)?;
    }
    if let Some(token) = &req.sign_token {
        check_sign_token(token)?;
    }
    let selection = check_events(&req.events, req.flavour)?;
    check_operational(&selection.kinds, req.flavour)?;
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
    e.auth = auth;
    e.retry_schedule = req.retry_schedule;
    e.kind = req.kind;
    if !e.pushes() {
        e.poll_token = Some(new_poll_token());
    }
    check_polling(&e)?;
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
    /// Replaces every static header; a value given as `********` keeps the stored one; `null` removes
    /// them all.
    #[serde(default, deserialize_with = "crate::nullable::some_nullable")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    headers: Option<Option<BTreeMap<String, String>>>,
    /// A password given as `********` keeps the stored one; `null` removes the credentials.
    #[serde(default, deserialize_with = "crate::nullable::some_nullable")]
    #[schema(value_type = Option<BasicAuth>)]
    basic_auth: Option<Option<BasicAuth>>,
    /// A `client_key` given as `********` keeps the stored one; `null` removes the TLS settings.
    #[serde(default, deserialize_with = "crate::nullable::some_nullable")]
    #[schema(value_type = Option<ClientTls>)]
    tls: Option<Option<ClientTls>>,
    /// `null` follows the server's `webhook.retry_schedule` again.
    #[serde(default, deserialize_with = "crate::nullable::some_nullable")]
    #[schema(value_type = Option<Vec<u64>>)]
    retry_schedule: Option<Option<Vec<u64>>>,
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
        let new = url_checked(&url, engine.config().https_only)?;
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
    check_operational(&e.events, e.flavour)?;
    if let Some(sources) = req.sources {
        e.sources = check_sources(sources.unwrap_or_default())?;
    }
    if let Some(filters) = req.filters {
        e.filters = check_filters(filters.unwrap_or_default())?;
    }
    let auth = ReceiverAuth {
        headers: req
            .headers
            .map_or(e.auth.headers.clone(), Option::unwrap_or_default),
        basic_auth: req.basic_auth.unwrap_or(e.auth.basic_auth.clone()),
        tls: req.tls.unwrap_or(e.auth.tls.clone()),
    };
    e.auth = check_auth(auth, &current.auth, &e.url)?;
    if let Some(schedule) = req.retry_schedule {
        if let Some(s) = &schedule {
            check_retry_schedule(s)?;
        }
        e.retry_schedule = schedule;
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
    check_polling(&e)?;
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
    // A polling endpoint's token is replaced too; the old one stops at once.
    if !e.pushes() {
        e.poll_token = Some(new_poll_token());
    }
    e.updated_at = now_ms();
    engine
        .update(e.clone(), false)
        .await
        .map_err(engine_error)?;
    let mut v = EndpointView::of(&engine, &e, true);
    v.previous_secret_valid_until = Some(rfc3339(until));
    Ok(Json(v))
}
