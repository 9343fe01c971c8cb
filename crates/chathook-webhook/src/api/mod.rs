//! The webhook admin API under `/v1` (admin key required, applied by the binary): the router and the
//! errors every handler shares. Each file beside it owns one part: `endpoints` (settings, secrets,
//! receiver authentication, URL rules), `deliveries` (tests, attempts, dead letters, replays), `stats`, `event_types` (the
//! catalog and the feature switches), `relay` (relay sources), `seek` (where an endpoint's cursor starts or goes), `poll` (polling endpoints), `notices`
//! (recent operational events).

mod deliveries;
mod endpoints;
mod event_types;
mod notices;
mod poll;
mod relay;
mod seek;
mod stats;

use std::sync::Arc;

use axum::http::StatusCode;
use chathook_http::{ApiError, V1Error};
use chathook_store::StoreError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::endpoint::Endpoint;
use crate::engine::{EngineError, WebhookEngine};

pub(super) type ApiResult<T> = Result<T, V1Error>;

/// Every route of [`router`], as (method, path), for tests that must visit each one.
pub const ROUTES: [(&str, &str); 27] = [
    ("POST", "/v1/webhooks/endpoints"),
    ("GET", "/v1/webhooks/endpoints"),
    ("GET", "/v1/webhooks/endpoints/{id}"),
    ("PATCH", "/v1/webhooks/endpoints/{id}"),
    ("DELETE", "/v1/webhooks/endpoints/{id}"),
    ("POST", "/v1/webhooks/endpoints/{id}/rotate-secret"),
    ("POST", "/v1/webhooks/endpoints/{id}/seek"),
    ("GET", "/v1/webhooks/endpoints/{id}/poll"),
    ("POST", "/v1/webhooks/endpoints/{id}/test"),
    ("GET", "/v1/webhooks/endpoints/{id}/attempts"),
    ("GET", "/v1/webhooks/endpoints/{id}/attempts/stream"),
    ("GET", "/v1/webhooks/endpoints/{id}/attempts/{attempt_id}"),
    ("GET", "/v1/webhooks/endpoints/{id}/dead-letters"),
    (
        "POST",
        "/v1/webhooks/endpoints/{id}/dead-letters/{delivery_id}/replay",
    ),
    ("POST", "/v1/webhooks/endpoints/{id}/replay"),
    ("GET", "/v1/webhooks/endpoints/{id}/stats"),
    ("POST", "/v1/webhooks/url-check"),
    ("GET", "/v1/webhooks/event-types"),
    ("GET", "/v1/webhooks/notices"),
    ("GET", "/v1/features"),
    ("PUT", "/v1/features"),
    ("POST", "/v1/relay/sources"),
    ("GET", "/v1/relay/sources"),
    ("GET", "/v1/relay/sources/{id}"),
    ("PATCH", "/v1/relay/sources/{id}"),
    ("DELETE", "/v1/relay/sources/{id}"),
    ("POST", "/v1/relay/sources/{id}/rotate"),
];

/// Whether `path` is a polling endpoint's poll route, which carries its own credential (the endpoint's
/// poll token) instead of the admin key.
pub fn is_poll_path(path: &str) -> bool {
    path.strip_prefix("/v1/webhooks/endpoints/")
        .and_then(|rest| rest.strip_suffix("/poll"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// The webhook routes, each with its OpenAPI description (`utoipa`), so that the document the binary
/// serves is made from the handlers themselves.
pub fn router(engine: WebhookEngine) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(endpoints::create, endpoints::list))
        .routes(routes!(
            endpoints::show,
            endpoints::patch,
            endpoints::remove
        ))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(seek::seek))
        .routes(routes!(poll::poll))
        .routes(routes!(deliveries::test))
        .routes(routes!(deliveries::attempts))
        .routes(routes!(deliveries::attempts_stream))
        .routes(routes!(deliveries::attempt))
        .routes(routes!(deliveries::dead_letters))
        .routes(routes!(deliveries::replay_one))
        .routes(routes!(deliveries::replay_since))
        .routes(routes!(stats::stats))
        .routes(routes!(endpoints::url_check))
        .routes(routes!(event_types::event_types))
        .routes(routes!(notices::notices))
        .routes(routes!(
            event_types::get_features,
            event_types::put_features
        ))
        .routes(routes!(relay::create, relay::list))
        .routes(routes!(relay::show, relay::patch, relay::remove))
        .routes(routes!(relay::rotate))
        .with_state(engine)
}

pub(super) fn engine_error(e: EngineError) -> V1Error {
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

/// Tencent's callback token: 1 to 128 printable ASCII characters, as its console takes.
pub(super) fn check_sign_token(token: &str) -> ApiResult<()> {
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

/// The longest description an endpoint or a relay source keeps, in bytes.
const MAX_DESCRIPTION_BYTES: usize = 1024;

pub(super) fn check_description(description: &str) -> ApiResult<()> {
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(bad(
            "description",
            "description_too_long",
            format!("description must be at most {MAX_DESCRIPTION_BYTES} bytes"),
        ));
    }
    Ok(())
}

pub(super) fn store_error(e: StoreError) -> V1Error {
    engine_error(EngineError::Store(e))
}

pub(super) fn bad(field: &str, code: &'static str, message: impl Into<String>) -> V1Error {
    V1Error(ApiError::field(field, code, message))
}

/// The endpoint `id`, as the store has it now (in a cluster another node may have just changed it).
pub(super) async fn find(engine: &WebhookEngine, id: &str) -> ApiResult<Arc<Endpoint>> {
    engine.catch_up().await.map_err(engine_error)?;
    engine.endpoint(id).ok_or_else(|| {
        V1Error(ApiError::not_found(
            "endpoint_not_found",
            format!("no endpoint {id}"),
        ))
    })
}
