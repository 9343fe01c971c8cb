//! Deliveries: a test event sent now, the attempt log, dead letters and their replay.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use chathook_http::{ApiError, V1Error, V1ErrorBody, V1Json, V1Query};
use chathook_store::{AttemptQuery, AttemptRecord, PendingDelivery};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{bad, find, store_error, ApiResult};
use crate::catalog;
use crate::clock::now_ms;
use crate::dispatcher::attempt::{latency_ms, Delivery};
use crate::endpoint::{new_id, HookKind};
use crate::engine::WebhookEngine;
use crate::format::{self, rfc3339};

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TestReq {
    /// The event to send a sample of (native name; default `message.sent`).
    #[serde(default)]
    event: Option<String>,
}

/// What an attempt did: a test send's answer, and each attempt of the log (with its id).
#[derive(Serialize, ToSchema)]
pub(super) struct AttemptOutcome {
    delivery_id: String,
    /// The event's name in the endpoint's flavour.
    event: String,
    at: String,
    success: bool,
    /// The HTTP status, when an answer came.
    status: Option<u16>,
    latency_ms: u32,
    error: String,
    /// The start of the answer's body.
    response: String,
    /// Where the delivery's events came from: `local` (this server's IM core), a relay source's id,
    /// or several joined with `,` (a batch); empty for attempts logged before relay mode.
    source: String,
}

/// Sends a sample event to the endpoint now, outside its queue; the attempt is logged.
#[utoipa::path(post, path = "/v1/webhooks/endpoints/{id}/test", tag = "deliveries",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body(content = Option<TestReq>, description = "Optional; an empty body sends message.sent"),
    responses((status = 200, body = AttemptOutcome), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn test(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<AttemptOutcome>> {
    let e = find(&engine, &id).await?;
    if !e.pushes() {
        return Err(V1Error(chathook_http::ApiError {
            status: axum::http::StatusCode::CONFLICT,
            code: "polling_endpoint",
            message: "a polling endpoint is not sent to; poll it (GET .../poll)".into(),
            field: None,
        }));
    }
    let req: TestReq = if body.iter().all(u8::is_ascii_whitespace) {
        TestReq::default()
    } else {
        chathook_http::parse(&body).map_err(V1Error)?
    };
    let name = req.event.unwrap_or_else(|| "message.sent".into());
    let app = engine.config().tencent_sdk_app_id;
    // Any name an endpoint's events take: native, WuKongIM's or Tencent's (the first kind it means),
    // or a before-send hook's.
    let rendered = if let Some(hook) = HookKind::from_name(&name) {
        crate::hooks::render_sample(e.flavour, hook, app)
    } else {
        let Some(kind) = catalog::resolve(&name).and_then(|kinds| kinds.first().copied()) else {
            return Err(bad(
                "event",
                "event_unknown",
                format!("unknown event {name:?}"),
            ));
        };
        format::render_sample(e.flavour, &catalog::sample(kind), app)
    };
    let Some(rendered) = rendered else {
        return Err(bad(
            "event",
            "event_not_in_flavour",
            format!("the endpoint's flavour does not send {name}"),
        ));
    };
    let delivery = Delivery::one_off(new_id("test"), rendered);
    let (at, result) = engine.send_once(&e, &delivery).await;
    Ok(Json(AttemptOutcome {
        delivery_id: delivery.id,
        event: delivery.event,
        at: rfc3339(at),
        success: result.success,
        status: result.status,
        latency_ms: latency_ms(result.latency),
        error: result.error,
        response: result.response,
        source: delivery.source,
    }))
}

/// One attempt of the log.
#[derive(Serialize, ToSchema)]
pub(super) struct AttemptView {
    id: i64,
    #[serde(flatten)]
    outcome: AttemptOutcome,
}

impl AttemptView {
    fn of(id: i64, a: &AttemptRecord) -> AttemptView {
        AttemptView {
            id,
            outcome: AttemptOutcome {
                delivery_id: a.delivery_id.clone(),
                event: a.event.clone(),
                at: rfc3339(a.at_ms),
                success: a.success,
                status: a.status,
                latency_ms: a.latency_ms,
                error: a.error.clone(),
                response: a.response.clone(),
                source: a.source.clone(),
            },
        }
    }
}

/// One attempt with the request body it sent (its start, at most 16 KiB).
#[derive(Serialize, ToSchema)]
pub(super) struct AttemptDetail {
    #[serde(flatten)]
    attempt: AttemptView,
    request: String,
}

/// One attempt, with its request body.
#[utoipa::path(get, path = "/v1/webhooks/endpoints/{id}/attempts/{attempt_id}", tag = "deliveries",
    params(("id" = String, Path, description = "The endpoint's id"),
           ("attempt_id" = i64, Path, description = "The attempt's id")),
    responses((status = 200, body = AttemptDetail), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn attempt(
    State(engine): State<WebhookEngine>,
    Path((id, attempt_id)): Path<(String, String)>,
) -> ApiResult<Json<AttemptDetail>> {
    find(&engine, &id).await?;
    let not_found = || {
        V1Error(ApiError::not_found(
            "attempt_not_found",
            format!("no attempt {attempt_id} on this endpoint"),
        ))
    };
    let number: i64 = attempt_id.parse().map_err(|_| not_found())?;
    let a = engine
        .store()
        .attempt(&id, number)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    Ok(Json(AttemptDetail {
        attempt: AttemptView::of(number, &a),
        request: a.request,
    }))
}

/// A page of the attempt log, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct AttemptPage {
    data: Vec<AttemptView>,
    /// The `before` of the next page, when there may be one.
    next_before: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AttemptsQuery {
    /// `success` or `failure`.
    status: Option<String>,
    /// Only attempts of this event (its name in the endpoint's flavour).
    event: Option<String>,
    /// Only attempts older than this attempt id (the previous page's `next_before`).
    before: Option<i64>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<usize>,
}

/// The `status` filter: `success`, `failure`, or none.
fn status_filter(status: Option<&str>) -> ApiResult<Option<bool>> {
    match status {
        None | Some("") => Ok(None),
        Some("success") => Ok(Some(true)),
        Some("failure") => Ok(Some(false)),
        Some(other) => Err(bad(
            "status",
            "status_invalid",
            format!("status must be success or failure, not {other:?}"),
        )),
    }
}

/// The attempt log, newest first, filtered.
#[utoipa::path(get, path = "/v1/webhooks/endpoints/{id}/attempts", tag = "deliveries",
    params(("id" = String, Path, description = "The endpoint's id"), AttemptsQuery),
    responses((status = 200, body = AttemptPage), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn attempts(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    V1Query(q): V1Query<AttemptsQuery>,
) -> ApiResult<Json<AttemptPage>> {
    find(&engine, &id).await?;
    let success = status_filter(q.status.as_deref())?;
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
            limit,
            ..Default::default()
        })
        .await
        .map_err(store_error)?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.0))
        .flatten();
    let data = rows.iter().map(|(i, a)| AttemptView::of(*i, a)).collect();
    Ok(Json(AttemptPage {
        data,
        next_before: next,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StreamQuery {
    /// `success` or `failure`.
    status: Option<String>,
    /// Only attempts of this event.
    event: Option<String>,
    /// Send attempts newer than this id (default: only those stored from now on).
    after: Option<i64>,
}

/// Most attempts one stream event carries after a batch is stored.
const STREAM_BATCH: usize = 1000;

/// The attempt log live, as Server-Sent Events: one `attempt` event per new attempt (the same JSON as
/// the list), oldest first, with the filters of the list. Ends when the endpoint is deleted or the
/// server stops.
#[utoipa::path(get, path = "/v1/webhooks/endpoints/{id}/attempts/stream", tag = "deliveries",
    params(("id" = String, Path, description = "The endpoint's id"), StreamQuery),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
         description = "`event: attempt`, `id: <attempt id>`, `data: <an attempt as in the list>`"),
        (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn attempts_stream(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    V1Query(q): V1Query<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>>> {
    find(&engine, &id).await?;
    let success = status_filter(q.status.as_deref())?;
    let query = AttemptQuery {
        endpoint_id: id,
        success,
        event: q.event.filter(|e| !e.is_empty()),
        limit: STREAM_BATCH,
        ..Default::default()
    };
    let mut stored = engine.attempts_stored();
    stored.mark_changed();
    let last = match q.after {
        Some(after) => after,
        None => newest_id(&engine, &query).await?,
    };
    let stopping = engine.stopping();
    let state = (engine, query, stored, stopping, last);
    let events = futures_util::stream::unfold(
        state,
        |(engine, query, mut stored, stopping, last)| async move {
            loop {
                tokio::select! {
                    changed = stored.changed() => changed.ok()?,
                    _ = stopping.cancelled() => return None,
                }
                engine.endpoint(&query.endpoint_id)?;
                let mut rows = engine
                    .store()
                    .attempts(AttemptQuery {
                        after_id: Some(last),
                        ..query.clone()
                    })
                    .await
                    .ok()?;
                if rows.is_empty() {
                    continue;
                }
                if rows.len() == STREAM_BATCH {
                    // more are waiting: read again at once
                    stored.mark_changed();
                }
                rows.reverse();
                let newest = rows.last().map_or(last, |r| r.0);
                let events: Vec<Result<SseEvent, std::convert::Infallible>> = rows
                    .iter()
                    .map(|(i, a)| {
                        Ok(SseEvent::default()
                            .event("attempt")
                            .id(i.to_string())
                            .json_data(AttemptView::of(*i, a))
                            .unwrap_or_default())
                    })
                    .collect();
                return Some((
                    futures_util::stream::iter(events),
                    (engine, query, stored, stopping, newest),
                ));
            }
        },
    )
    .flatten();
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The id of the newest attempt `query` matches (0 when none).
async fn newest_id(engine: &WebhookEngine, query: &AttemptQuery) -> ApiResult<i64> {
    let newest = engine
        .store()
        .attempts(AttemptQuery {
            limit: 1,
            ..query.clone()
        })
        .await
        .map_err(store_error)?;
    Ok(newest.first().map_or(0, |r| r.0))
}

/// A delivery that ran out of retries.
#[derive(Serialize, ToSchema)]
pub(super) struct DeadLetterView {
    delivery_id: String,
    event: String,
    attempts: u32,
    last_error: String,
    event_at: String,
    dead_lettered_at: String,
    /// The request body it was sent with.
    body: String,
    /// Where its events came from (as on attempts).
    source: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct DeadLetterList {
    data: Vec<DeadLetterView>,
}

impl DeadLetterView {
    fn of(d: &PendingDelivery) -> DeadLetterView {
        DeadLetterView {
            delivery_id: d.delivery_id.clone(),
            event: d.event.clone(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            event_at: rfc3339(d.event_at_ms),
            dead_lettered_at: rfc3339(d.dead_at_ms),
            body: String::from_utf8_lossy(&d.body).into_owned(),
            source: d.source.clone(),
        }
    }
}

/// The endpoint's dead letters (at most 1000, newest first).
#[utoipa::path(get, path = "/v1/webhooks/endpoints/{id}/dead-letters", tag = "deliveries",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, body = DeadLetterList), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn dead_letters(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeadLetterList>> {
    find(&engine, &id).await?;
    let rows = engine
        .store()
        .dead_letters(&id, 1000)
        .await
        .map_err(store_error)?;
    Ok(Json(DeadLetterList {
        data: rows.iter().map(DeadLetterView::of).collect(),
    }))
}

/// How many dead letters were queued for delivery again.
#[derive(Serialize, ToSchema)]
pub(super) struct Replayed {
    replayed: u64,
}

/// Queues one dead letter for delivery again.
#[utoipa::path(post, path = "/v1/webhooks/endpoints/{id}/dead-letters/{delivery_id}/replay",
    tag = "deliveries",
    params(("id" = String, Path, description = "The endpoint's id"),
           ("delivery_id" = String, Path, description = "The dead letter's delivery id")),
    responses((status = 202, body = Replayed), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn replay_one(
    State(engine): State<WebhookEngine>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Replayed>)> {
    find(&engine, &id).await?;
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
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed: n as u64 })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayReq {
    /// RFC 3339 UTC time: dead letters of events since then are delivered again.
    since: String,
}

/// Queues every dead letter of events since a time for delivery again.
#[utoipa::path(post, path = "/v1/webhooks/endpoints/{id}/replay", tag = "deliveries",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = ReplayReq,
    responses((status = 202, body = Replayed), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn replay_since(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    V1Json(req): V1Json<ReplayReq>,
) -> ApiResult<(StatusCode, Json<Replayed>)> {
    find(&engine, &id).await?;
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
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed: n as u64 })))
}
