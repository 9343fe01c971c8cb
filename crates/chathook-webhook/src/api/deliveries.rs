//! Deliveries: a test event sent now, the attempt log, dead letters and their replay.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use chathook_events::EventKind;
use chathook_http::{ApiError, V1Error, V1Json};
use chathook_store::{AttemptQuery, AttemptRecord, PendingDelivery};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad, find, store_error, ApiResult};
use crate::catalog;
use crate::dispatcher::attempt::{latency_ms, Delivery};
use crate::dispatcher::now_ms;
use crate::endpoint::new_id;
use crate::engine::WebhookEngine;
use crate::format::{self, rfc3339};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct TestReq {
    #[serde(default)]
    event: Option<String>,
}

pub(super) async fn test(
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
pub(super) struct AttemptsQuery {
    status: Option<String>,
    event: Option<String>,
    before: Option<i64>,
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

pub(super) async fn attempts(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    Query(q): Query<AttemptsQuery>,
) -> ApiResult<Json<Value>> {
    find(&engine, &id)?;
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
    let data: Vec<Value> = rows.iter().map(|(i, a)| attempt_json(*i, a)).collect();
    Ok(Json(json!({"data": data, "next_before": next})))
}

#[derive(Deserialize)]
pub(super) struct StreamQuery {
    status: Option<String>,
    event: Option<String>,
    /// Send attempts newer than this id (default: only those stored from now on).
    after: Option<i64>,
}

/// Most attempts one stream event carries after a batch is stored.
const STREAM_BATCH: usize = 1000;

/// The attempt log live, as Server-Sent Events: one `attempt` event per new attempt (the same JSON as
/// the list), oldest first, with the filters of the list. Ends when the endpoint is deleted or the
/// server stops.
pub(super) async fn attempts_stream(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    Query(q): Query<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>>> {
    find(&engine, &id)?;
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
        |(engine, query, mut stored, mut stopping, last)| async move {
            loop {
                tokio::select! {
                    changed = stored.changed() => changed.ok()?,
                    _ = stopping.wait_for(|s| *s) => return None,
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
                            .data(attempt_json(*i, a).to_string()))
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

pub(super) async fn dead_letters(
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

pub(super) async fn replay_one(
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
pub(super) struct ReplayReq {
    since: String,
}

pub(super) async fn replay_since(
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
