//! The chathook server binary's library: configuration, wiring and the HTTP edges (`/health`,
//! `/metrics`, `/openapi.json`, `/v1/overview`, the console's files, admin-key auth). It owns no domain
//! logic: the IM core lives in `chathook-im`, storage in `chathook-store`, events in `chathook-events`.
//!
//! [`run`] takes its listeners and a shutdown future (as mini-redis does), so tests start the real
//! server on ephemeral loopback ports and stop it the way a signal would.

pub mod auth;
pub mod config;
mod console;
pub mod data_dir;
mod metrics;
pub mod openapi;
mod overview;
pub mod secrets;
mod server;
pub mod wukongim_config;

use std::future::Future;

use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use tokio::net::TcpListener;

pub use config::Config;
pub use server::Server;

/// The routes this crate adds beside the IM core's and the webhook engine's, as (method, path).
pub const ROUTES: [(&str, &str); 1] = [("GET", "/v1/overview")];

pub(crate) async fn not_found() -> impl IntoResponse {
    (
        axum::http::StatusCode::NOT_FOUND,
        Json(
            json!({"status": 404, "msg": "no such route", "code": "not_found",
                    "error": {"code": "not_found", "message": "no such route"}}),
        ),
    )
}

/// Every answer's media type is the one it says: browsers must not guess another.
pub(crate) async fn no_sniff(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Runs the server until `shutdown` completes, then disconnects every client, reports them offline,
/// lets every pending write commit, and returns.
pub async fn run(
    config: Config,
    api_listener: TcpListener,
    ws_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let server = Server::start(config, api_listener, ws_listener).await?;
    shutdown.await;
    server.stop().await;
    Ok(())
}
