//! `GET /v1/webhooks/endpoints/{id}/poll`: a polling endpoint's consumer fetches its events (for a
//! receiver without a public URL). Authenticated with the endpoint's own poll token, not the admin
//! key. The iterator is a position in the event log: a poll with one acknowledges everything up to it
//! (the endpoint's durable cursor, the same one a push endpoint has), and answers the events after it
//! that the endpoint selects, rendered in its flavour, with the next iterator. At-least-once: until
//! a poll carries the next iterator, the same events come again. With `wait_ms`, a poll that finds
//! nothing waits up to that long (at most 30 s) for new events.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Extension;
use axum::Json;
use chathook_events::{Event, LoggedEvent};
use chathook_http::listen::ConnHandle;
use chathook_http::{ApiError, V1Error, V1ErrorBody, V1Query};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{bad, engine_error, find, ApiResult};
use crate::catalog::Route;
use crate::endpoint::Endpoint;
use crate::engine::WebhookEngine;
use crate::format::{self, Rendered};

/// The most events one poll answers (and the default).
pub const MAX_POLL_LIMIT: usize = 1000;
/// The longest `wait_ms`.
pub const MAX_WAIT_MS: u64 = 30_000;
/// Log events examined per poll at most (those the endpoint does not take included), so that a poll
/// over a long stretch it filters out answers in bounded time, with an iterator past what it skipped.
const MAX_EXAMINED: usize = 10_000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PollQuery {
    /// Where the last poll ended (its `iterator`): everything up to it is acknowledged. Missing: from
    /// the endpoint's cursor.
    iterator: Option<String>,
    /// At most this many events (1 to 1000, default 100).
    limit: Option<usize>,
    /// When nothing is waiting, wait up to this long for new events (0 to 30000, default 0).
    wait_ms: Option<u64>,
}

/// One event as the endpoint's flavour renders it.
#[derive(Serialize, ToSchema)]
pub(super) struct PolledEvent {
    /// Stable across polls (the push flavour's `webhook-id`): `evt_<position>`.
    id: String,
    position: u64,
    /// The event's name in the flavour (`message.sent`, `msg.notify`, `C2C.CallbackAfterSendMsg`...).
    event: String,
    /// The query string a push delivery would carry (WuKongIM's `event=`, Tencent's command), if any.
    query: String,
    /// The body a push delivery would carry.
    #[schema(value_type = Object)]
    body: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub(super) struct PollPage {
    data: Vec<PolledEvent>,
    /// Give it to the next poll: it acknowledges these events and reads on after them.
    iterator: String,
    /// Nothing more is waiting (the iterator is at the log's head).
    done: bool,
}

/// The next events of a polling endpoint, in its flavour.
#[utoipa::path(get, path = "/v1/webhooks/endpoints/{id}/poll", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id"), PollQuery),
    security(("bearer" = [])),
    responses((status = 200, body = PollPage), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn poll(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    headers: HeaderMap,
    conn: Option<Extension<ConnHandle>>,
    V1Query(q): V1Query<PollQuery>,
) -> ApiResult<Json<PollPage>> {
    // An unknown endpoint is refused like a wrong token: the route does not tell which ids exist.
    let e = find(&engine, &id).await.map_err(|_| unauthorized())?;
    check_token(&e, &headers)?;
    // Shown a credential: the listener never closes it to make room for another (a long poll waits).
    if let Some(Extension(conn)) = conn {
        conn.authenticated();
    }
    if !engine.health(&id).active(&e) {
        return Err(V1Error(ApiError {
            status: StatusCode::CONFLICT,
            code: "endpoint_disabled",
            message: "the endpoint is disabled; enable it to poll".into(),
            field: None,
        }));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_POLL_LIMIT).contains(&limit) {
        return Err(bad(
            "limit",
            "limit_out_of_range",
            format!("limit must be between 1 and {MAX_POLL_LIMIT}"),
        ));
    }
    let wait = q.wait_ms.unwrap_or(0);
    if wait > MAX_WAIT_MS {
        return Err(bad(
            "wait_ms",
            "wait_out_of_range",
            format!("wait_ms must be at most {MAX_WAIT_MS}"),
        ));
    }
    let from = start(&engine, &e, q.iterator.as_deref()).await?;
    let (mut page, position) = read(&engine, &e, from, limit).await?;
    if page.data.is_empty() && wait > 0 {
        let _ = tokio::time::timeout(
            Duration::from_millis(wait),
            engine.log().wait_beyond(position),
        )
        .await;
        page = read(&engine, &e, position, limit).await?.0;
    }
    Ok(Json(page))
}

/// Refuses a request without the endpoint's poll token (`Authorization: Bearer`), or to an endpoint
/// that does not poll.
fn check_token(e: &Endpoint, headers: &HeaderMap) -> ApiResult<()> {
    let Some(token) = e.poll_token.as_deref().filter(|_| !e.pushes()) else {
        return Err(V1Error(ApiError {
            status: StatusCode::CONFLICT,
            code: "not_polling",
            message: "this endpoint is not a polling endpoint (kind \"polling\")".into(),
            field: None,
        }));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let right = given.is_some_and(|g| {
        use subtle::ConstantTimeEq;
        g.len() == token.len() && bool::from(g.as_bytes().ct_eq(token.as_bytes()))
    });
    if !right {
        return Err(unauthorized());
    }
    Ok(())
}

fn unauthorized() -> V1Error {
    V1Error(ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message: "send the endpoint's poll token as `Authorization: Bearer <poll_token>`".into(),
        field: None,
    })
}

/// Where the poll reads from: the iterator, acknowledged first; or the endpoint's cursor.
async fn start(engine: &WebhookEngine, e: &Endpoint, iterator: Option<&str>) -> ApiResult<u64> {
    let log = engine.log();
    let consumer = e.consumer_name();
    let Some(text) = iterator.filter(|t| !t.is_empty()) else {
        return log
            .consumer_position(&consumer)
            .await
            .map_err(|e| engine_error(e.into()));
    };
    let position: u64 = text.parse().map_err(|_| {
        bad(
            "iterator",
            "iterator_invalid",
            "iterator is the `iterator` a poll answered",
        )
    })?;
    if position > log.head() {
        return Err(bad(
            "iterator",
            "iterator_invalid",
            "iterator is beyond the event log: give the one a poll answered",
        ));
    }
    // Never moves back: an older iterator reads again from there without undoing acknowledgements.
    log.ack(&consumer, position)
        .await
        .map_err(|e| engine_error(e.into()))?;
    Ok(position)
}

/// Up to `limit` events after `from` that `e` takes, rendered, and the last position examined (the
/// page's iterator: events it does not take are passed over).
async fn read(
    engine: &WebhookEngine,
    e: &Endpoint,
    from: u64,
    limit: usize,
) -> ApiResult<(PollPage, u64)> {
    let log = engine.log();
    let features = engine.features();
    let batch = engine.config().read_batch.min(MAX_EXAMINED);
    let mut data = Vec::new();
    let mut position = from;
    let mut examined = 0;
    'reading: while examined < MAX_EXAMINED {
        let events = log
            .read_after(position, batch)
            .await
            .map_err(|e| engine_error(e.into()))?;
        if events.is_empty() {
            break;
        }
        for logged in events {
            examined += 1;
            match format::take(e, &logged.event, &features) {
                format::Take::Send(route) => {
                    if let Some(r) = render(e, &logged, route, engine) {
                        data.push(PolledEvent {
                            id: format!("evt_{}", logged.position),
                            position: logged.position,
                            event: r.event,
                            query: r.query,
                            body: serde_json::from_slice(&r.body)
                                .unwrap_or(serde_json::Value::Null),
                        });
                    }
                }
                format::Take::Filtered => engine.metrics().count_filtered(&e.id),
                format::Take::Pass => {}
            }
            position = logged.position;
            if data.len() >= limit {
                break 'reading;
            }
        }
    }
    let page = PollPage {
        data,
        iterator: position.to_string(),
        done: position >= log.head(),
    };
    Ok((page, position))
}

/// `logged` as one delivery of `e`'s flavour would carry it (WuKongIM's batches as batches of one).
fn render(
    e: &Endpoint,
    logged: &LoggedEvent,
    route: Route,
    engine: &WebhookEngine,
) -> Option<Rendered> {
    let app = engine.config().tencent_sdk_app_id;
    match route {
        Route::Single => format::render_single(e.flavour, logged, app),
        Route::Notify => match logged.event.inner() {
            Event::MessageSent(m) => Some(format::render_notify(&[m])),
            _ => None,
        },
        Route::Status => match logged.event.inner() {
            Event::UserOnline(c) => Some(format::render_status(&[format::status_item(c, true)])),
            Event::UserOffline(c) => Some(format::render_status(&[format::status_item(c, false)])),
            _ => None,
        },
    }
}
