//! `GET /v1/webhooks/notices`: the recent operational events (endpoints failing, recovering, paused,
//! disabled or enabled; dead letters; relay refusals), newest first, as the console shows them.

use axum::extract::State;
use axum::Json;
use chathook_http::{V1ErrorBody, V1Query};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{bad, store_error, ApiResult};
use crate::engine::WebhookEngine;
use crate::notices::{Notice, MAX_NOTICES};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct NoticesQuery {
    /// At most this many (default and most: 100).
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct NoticeList {
    data: Vec<Notice>,
}

/// The recent operational events, newest first (the event log keeps them all, delivered to endpoints
/// that select them).
#[utoipa::path(get, path = "/v1/webhooks/notices", tag = "webhooks",
    params(NoticesQuery),
    responses((status = 200, body = NoticeList), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn notices(
    State(engine): State<WebhookEngine>,
    V1Query(q): V1Query<NoticesQuery>,
) -> ApiResult<Json<NoticeList>> {
    let limit = q.limit.unwrap_or(MAX_NOTICES);
    if !(1..=MAX_NOTICES).contains(&limit) {
        return Err(bad(
            "limit",
            "limit_out_of_range",
            format!("limit must be between 1 and {MAX_NOTICES}"),
        ));
    }
    let mut data = engine.notices().recent().await.map_err(store_error)?;
    data.truncate(limit);
    Ok(Json(NoticeList { data }))
}
