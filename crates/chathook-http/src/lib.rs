//! chathook's HTTP conventions, shared by every API: the error envelopes (WuKongIM's
//! `{"status":400,"msg":...}` on its routes, `{"error":{"code","message","field"}}` on `/v1`) and JSON
//! bodies whose parse errors name the offending field, and how accepted connections are set up. It
//! knows no domain types.

mod error;
mod extract;
pub mod listen;
pub mod throttle;

pub use error::{ApiError, V1Error, V1ErrorBody, V1ErrorDetail, WkErrorBody};
pub use extract::{parse, V1Json, V1Query, WkJson};

/// Sends small writes at once on an accepted connection (use with `axum::serve::ListenerExt::tap_io`):
/// IM frames and API replies are a few hundred bytes, and Nagle's algorithm would hold one back until
/// the peer acknowledges the previous one.
pub fn no_delay(tcp: &mut tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
}
