//! The gateway: accepts connections (under the server-wide cap) and runs one session per connection.
//! Links: `ws` (WebSocket) and `tcp` (the same protocols on a byte stream), behind `transport`, what any
//! link offers a session. Protocols: `jsonrpc` (WuKongIM's JSON-RPC 2.0) and `wkproto` (its binary
//! protocol), behind `codec`, what any protocol offers it. `connect` is the connect phase, `session`
//! the loop after it, and `close` how a connection ends.
//!
//! The gateway turns frames into calls on [`crate::Im`] and messages queued for a connection into
//! frames; it holds no state of its own beyond each session.

mod close;
mod codec;
mod connect;
pub mod jsonrpc;
mod session;
pub mod tcp;
mod transport;
mod wkproto;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use chathook_http::listen::{ConnHandle, ConnLimits};
use tokio::net::TcpListener;

use crate::Im;

/// The WebSocket router: any path upgrades (WuKongIM clients connect to the root).
pub fn router(im: Im) -> Router {
    Router::new()
        .route("/", any(upgrade))
        .fallback(upgrade)
        .with_state(im)
}

/// Serves the gateway on `listener` under the server's connection limits until `shutdown` completes;
/// sessions are ended by [`Im::shutdown`].
pub async fn serve(
    listener: TcpListener,
    im: Im,
    limits: Arc<ConnLimits>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    chathook_http::listen::serve(listener, router(im), limits, shutdown).await
}

async fn upgrade(
    State(im): State<Im>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    conn: Option<Extension<ConnHandle>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    if *im.shutdown_signal().borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        )
            .into_response();
    }
    let Ok(permit) = im.sessions().clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections: limits.max_connections reached",
        )
            .into_response();
    };
    let max = im.config().limits.max_frame_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(im.config().gateway.read_buffer_bytes)
        .on_upgrade(move |socket| ws::run(socket, im, peer, conn.map(|c| c.0), permit))
}
