//! `GET /route` and `POST /route/batch`: the addresses a client should dial, from the `route` settings
//! (one node, so every user gets the same). Answered bare, as WuKongIM does; `?intranet=1` answers the
//! intranet TCP address alone.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::check_uid;
use crate::Im;
use chathook_http::{ApiError, WkJson};

/// (tcp_addr, ws_addr, wss_addr) for this request.
fn addrs(im: &Im, query: &HashMap<String, String>) -> (String, String, String) {
    let route = &im.config().route;
    if query.get("intranet").is_some_and(|v| v == "1") {
        (
            route.intranet_tcp_addr.clone(),
            String::new(),
            String::new(),
        )
    } else {
        (
            route.tcp_addr.clone(),
            route.ws_addr.clone(),
            route.wss_addr.clone(),
        )
    }
}

/// `GET /route?uid=`: `{tcp_addr, ws_addr, wss_addr}`.
pub(super) async fn route(
    State(im): State<Im>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (tcp, ws, wss) = addrs(&im, &query);
    Ok(Json(
        json!({"tcp_addr": tcp, "ws_addr": ws, "wss_addr": wss}),
    ))
}

/// `POST /route/batch` with a JSON array of uids: `[{uids, tcp_addr, ws_addr, wss_addr}]`.
pub(super) async fn route_batch(
    State(im): State<Im>,
    Query(query): Query<HashMap<String, String>>,
    WkJson(uids): WkJson<Vec<String>>,
) -> Result<Json<Value>, ApiError> {
    uids.iter().try_for_each(|u| check_uid("uids", u))?;
    let (tcp, ws, wss) = addrs(&im, &query);
    Ok(Json(
        json!([{"uids": uids, "tcp_addr": tcp, "ws_addr": ws, "wss_addr": wss}]),
    ))
}
