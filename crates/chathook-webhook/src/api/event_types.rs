//! The event catalog as the API lists it, and the feature switches.

use axum::extract::State;
use axum::Json;
use chathook_http::V1Json;
use serde_json::{json, Value};

use super::{engine_error, ApiResult};
use crate::catalog;
use crate::engine::WebhookEngine;
use crate::features::Features;

pub(super) async fn event_types() -> Json<Value> {
    Json(json!({"data": catalog::listing(), "before_send": crate::hooks::listing()}))
}

pub(super) async fn get_features(State(engine): State<WebhookEngine>) -> Json<Value> {
    Json(json!(engine.features()))
}

pub(super) async fn put_features(
    State(engine): State<WebhookEngine>,
    V1Json(features): V1Json<Features>,
) -> ApiResult<Json<Value>> {
    engine.set_features(features).await.map_err(engine_error)?;
    Ok(Json(json!(features)))
}
