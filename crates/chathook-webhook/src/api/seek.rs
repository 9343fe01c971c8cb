//! Where an endpoint reads the event log from: `start_from` when it is created, and a seek later (to
//! deliver again from a time, for instance to rebuild a downstream database, or to skip ahead).

use axum::extract::{Path, State};
use axum::Json;
use chathook_http::{V1ErrorBody, V1Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{bad, engine_error, find, ApiResult};
use crate::engine::{StartFrom, WebhookEngine};
use crate::format::rfc3339;

/// `now`, `oldest`, or an RFC 3339 time, as `field` gave it.
pub(super) fn start_from(field: &str, text: &str) -> ApiResult<StartFrom> {
    match text {
        "now" => Ok(StartFrom::Now),
        "oldest" => Ok(StartFrom::Oldest),
        t => humantime_serde::re::humantime::parse_rfc3339_weak(t)
            .ok()
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| StartFrom::Time(d.as_millis() as i64))
            .ok_or_else(|| {
                bad(
                    field,
                    "start_invalid",
                    format!("{field} is \"now\", \"oldest\" or an RFC 3339 time, not {t:?}"),
                )
            }),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SeekReq {
    /// `oldest`, `now`, or an RFC 3339 time: the endpoint reads the events appended from then on.
    #[serde(default)]
    to: Option<String>,
    /// Or a position of the log: the endpoint reads the events after it.
    #[serde(default)]
    position: Option<u64>,
}

/// The log's part an endpoint asked for that retention already removed.
#[derive(Serialize, ToSchema)]
pub(super) struct SeekGap {
    /// The oldest event the log still holds, where the endpoint reads from instead (the next to come
    /// when the log is empty).
    oldest_position: u64,
    oldest_at: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Sought {
    /// The cursor now: the endpoint reads the events after this position.
    position: u64,
    /// Set when what was asked is older than the log.
    gap: Option<SeekGap>,
    /// The endpoint's dispatcher started again from there within 15 s (in a cluster, on the node
    /// delivering it). When false, the request is stored and applied when a dispatcher next starts.
    applied: bool,
}

/// Moves the endpoint's cursor (its dispatcher, on whichever node runs it, starts again from there;
/// what was delivered after it is delivered again, with the same ids).
#[utoipa::path(post, path = "/v1/webhooks/endpoints/{id}/seek", tag = "deliveries",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = SeekReq,
    responses((status = 200, body = Sought), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn seek(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    V1Json(req): V1Json<SeekReq>,
) -> ApiResult<Json<Sought>> {
    let e = find(&engine, &id).await?;
    let log = engine.log();
    let asked = match (req.to.as_deref(), req.position) {
        (Some(to), None) => match start_from("to", to)? {
            StartFrom::Now => log.head(),
            StartFrom::Oldest => 0,
            StartFrom::Time(at_ms) => log
                .position_before(at_ms)
                .await
                .map_err(|e| engine_error(e.into()))?,
        },
        (None, Some(position)) => position.min(log.head()),
        _ => return Err(bad("to", "seek_target", "give either to or position")),
    };
    let oldest = log.oldest().await.map_err(|e| engine_error(e.into()))?;
    // The first event still stored: the next one to come when retention emptied the log.
    let (first, at_ms) = oldest.unwrap_or((log.head() + 1, crate::clock::now_ms()));
    // Older than the log: read from its oldest event, and say what is missing.
    let (position, gap) = if asked + 1 < first {
        let gap = SeekGap {
            oldest_position: first,
            oldest_at: rfc3339(at_ms),
        };
        (first - 1, Some(gap))
    } else {
        (asked, None)
    };
    let applied = engine.seek(&e.id, position).await.map_err(engine_error)?;
    Ok(Json(Sought {
        position,
        gap,
        applied,
    }))
}
