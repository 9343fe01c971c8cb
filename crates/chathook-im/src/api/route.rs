//! `GET /route` and `POST /route/batch`: the addresses a client should dial, from the `route` settings
//! (one node, so every user gets the same). Answered bare, as WuKongIM does; `?intranet=1` answers the
//! intranet TCP address alone.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::check_uid;
use crate::Im;
use chathook_http::{ApiError, WkErrorBody, WkJson};

/// Where a client connects.
#[derive(Serialize, ToSchema)]
pub(super) struct Route {
    tcp_addr: String,
    ws_addr: String,
    wss_addr: String,
}

/// The route of a group of users.
#[derive(Serialize, ToSchema)]
pub(super) struct BatchRoute {
    uids: Vec<String>,
    tcp_addr: String,
    ws_addr: String,
    wss_addr: String,
}

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
#[utoipa::path(get, path = "/route", tag = "users",
    params(("uid" = Option<String>, Query), ("intranet" = Option<u8>, Query, description = "1: the intranet TCP address alone")),
    responses((status = 200, body = Route)))]
pub(super) async fn route(
    State(im): State<Im>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Route> {
    let (tcp_addr, ws_addr, wss_addr) = addrs(&im, &query);
    Json(Route {
        tcp_addr,
        ws_addr,
        wss_addr,
    })
}

/// `POST /route/batch` with a JSON array of uids: `[{uids, tcp_addr, ws_addr, wss_addr}]`.
#[utoipa::path(post, path = "/route/batch", tag = "users", request_body = Vec<String>,
    params(("intranet" = Option<u8>, Query, description = "1: the intranet TCP address alone")),
    responses((status = 200, body = Vec<BatchRoute>), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn route_batch(
    State(im): State<Im>,
    Query(query): Query<HashMap<String, String>>,
    WkJson(uids): WkJson<Vec<String>>,
) -> Result<Json<Vec<BatchRoute>>, ApiError> {
    uids.iter().try_for_each(|u| check_uid("uids", u))?;
    let (tcp_addr, ws_addr, wss_addr) = addrs(&im, &query);
    Ok(Json(vec![BatchRoute {
        uids,
        tcp_addr,
        ws_addr,
        wss_addr,
    }]))
}
