//! The event catalog as the API lists it, and the feature switches.

use axum::extract::State;
use axum::Json;
use chathook_http::{V1ErrorBody, V1Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::{engine_error, ApiResult};
use crate::catalog::{self, ListedEvent};
use crate::engine::WebhookEngine;
use crate::features::Features;

#[derive(Serialize, ToSchema)]
pub(super) struct EventTypes {
    /// The events endpoints may select.
    data: Vec<ListedEvent>,
    /// The before-send hooks (tencent and standard flavours).
    before_send: Vec<ListedEvent>,
}

/// Every event and before-send hook: names per flavour, description, feature switch, example bodies.
#[utoipa::path(get, path = "/v1/webhooks/event-types", tag = "webhooks",
    responses((status = 200, body = EventTypes)))]
pub(super) async fn event_types() -> Json<EventTypes> {
    Json(EventTypes {
        data: catalog::listing(),
        before_send: crate::hooks::listing(),
    })
}

/// The feature switches.
#[utoipa::path(get, path = "/v1/features", tag = "features",
    responses((status = 200, body = Features)))]
pub(super) async fn get_features(State(engine): State<WebhookEngine>) -> Json<Features> {
    Json(engine.features())
}

/// Sets the feature switches (all of them; a missing one is off).
#[utoipa::path(put, path = "/v1/features", tag = "features",
    request_body = Features,
    responses((status = 200, body = Features), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn put_features(
    State(engine): State<WebhookEngine>,
    V1Json(features): V1Json<Features>,
) -> ApiResult<Json<Features>> {
    engine.set_features(features).await.map_err(engine_error)?;
    Ok(Json(features))
}
