//! The ingest entry point: `POST /relay/{source id}/{path secret}`, without the admin key (the path
//! secret is the credential). The source's kind says how the request reads: WuKongIM's
//! `?event=<name>` with its raw body. A request is answered only after its events are durably
//! committed: exactly HTTP 200 with an empty body for WuKongIM (which takes nothing else as success).
//! A wrong source or secret gets 404, a peer outside `allowed_networks` 403, a body that does not
//! parse 400 naming why; none of them stores anything.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chathook_http::ApiError;

use super::source::{Source, SourceKind};
use super::Relay;
use crate::format::wukongim;

/// The routes of the ingest entry point, with the body limit `max_body_bytes`.
pub fn router(relay: Relay, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/relay/{id}/{secret}", post(ingest))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(relay)
}

fn refuse(
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&str>,
) -> Response {
    chathook_http::V1Error(ApiError {
        status,
        code,
        message,
        field: field.map(str::to_string),
    })
    .into_response()
}

async fn ingest(
    State(relay): State<Relay>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Path((id, secret)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(source) = relay.authenticate(&id, &secret).await else {
        return refuse(
            StatusCode::NOT_FOUND,
            "relay_source_not_found",
            "no relay source at this URL".into(),
            None,
        );
    };
    let peer = peer.map(|c| c.0 .0.ip().to_canonical());
    if !peer.is_some_and(|ip| source.admits_peer(ip)) && !source.allowed_networks.is_empty() {
        return refuse(
            StatusCode::FORBIDDEN,
            "relay_network_refused",
            "this source does not take requests from this address".into(),
            None,
        );
    }
    match source.kind {
        SourceKind::Wukongim => wukongim_ingest(&relay, &source, &query, &body).await,
        SourceKind::Tencent => refuse(
            StatusCode::NOT_IMPLEMENTED,
            "relay_kind_unsupported",
            "Tencent sources do not take requests yet".into(),
            None,
        ),
    }
}

/// WuKongIM's `POST ?event=<name>`: parsed, committed, then HTTP 200 with an empty body.
async fn wukongim_ingest(
    relay: &Relay,
    source: &Source,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    let Some(event) = query.get("event").filter(|e| !e.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "relay_event_missing",
            "WuKongIM's webhooks name their event in ?event=".into(),
            Some("event"),
        );
    };
    let parsed = match wukongim::parse(event, body) {
        Ok(parsed) => parsed,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "relay_body_invalid",
                e.to_string(),
                Some("body"),
            )
        }
    };
    match relay.commit(source, parsed).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::error!(source = %source.id, error = %e, "cannot store relayed events");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "relay_store_failed",
                "the events could not be stored; send them again".into(),
                None,
            )
        }
    }
}
