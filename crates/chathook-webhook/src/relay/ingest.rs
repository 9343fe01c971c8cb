//! The ingest entry point: `POST /relay/{source id}/{path secret}`, without the admin key (the path
//! secret is the credential). The source's kind says how the request reads: WuKongIM's
//! `?event=<name>` with its raw body, or a Tencent callback (`?SdkAppid=&CallbackCommand=&...&Sign=
//! &RequestTime=`). A request is answered only after its events are durably committed: exactly HTTP
//! 200 with an empty body for WuKongIM (which takes nothing else as success), Tencent's
//! `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`. A Tencent before-send callback is answered
//! with the hook's verdict instead, within the source's deadline, and stores nothing. A wrong source or
//! secret gets 404, a peer outside `allowed_networks` or another `SdkAppid` 403, a missing, wrong or
//! stale `Sign` 401, a body that does not parse 400 naming why; none of them stores anything.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chathook_http::ApiError;
use serde_json::json;

use super::source::{SignRefusal, Source, SourceKind};
use super::Relay;
use crate::clock::now_ms;
use crate::format::tencent::{self, Parsed};
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
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
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
        SourceKind::Tencent => tencent_ingest(&relay, &source, &query, &body).await,
    }
}

/// WuKongIM's `POST ?event=<name>`: parsed, committed, then HTTP 200 with an empty body.
async fn wukongim_ingest(
    relay: &Relay,
    source: &Source,
    query: &[(String, String)],
    body: &[u8],
) -> Response {
    let event = query.iter().find(|(k, _)| k == "event").map(|(_, v)| v);
    let Some(event) = event.filter(|e| !e.is_empty()) else {
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
    match relay.commit(source, parsed, None).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => store_failed(source, e),
    }
}

fn store_failed(source: &Source, e: chathook_store::StoreError) -> Response {
    tracing::error!(source = %source.id, error = %e, "cannot store relayed events");
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "relay_store_failed",
        "the events could not be stored; send them again".into(),
        None,
    )
}

/// A Tencent callback: the app and the signature checked, then an after-event committed and answered
/// OK, or a before-send callback answered with the hook's verdict.
async fn tencent_ingest(
    relay: &Relay,
    source: &Source,
    query: &[(String, String)],
    body: &[u8],
) -> Response {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(app) = source.sdk_app_id {
        if param("SdkAppid") != Some(app.to_string().as_str()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "relay_app_refused",
                format!("this source takes the callbacks of SdkAppid {app} only"),
                Some("SdkAppid"),
            );
        }
    }
    if let Err(refusal) = source.admits_sign(param("Sign"), param("RequestTime"), now_ms()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            refusal.reason(),
            match refusal {
                SignRefusal::Missing => {
                    "Sign and RequestTime are required (the source has a token)".into()
                }
                SignRefusal::Wrong => "Sign is not sha256(token + RequestTime)".into(),
                SignRefusal::Stale => {
                    format!("RequestTime is more than {} s from now", source.max_skew_s)
                }
            },
            Some("Sign"),
        );
    }
    let parsed = tencent::parse(&tencent::Request { query, body });
    match parsed {
        Err(e) => refuse(
            StatusCode::BAD_REQUEST,
            "relay_body_invalid",
            e.to_string(),
            Some("body"),
        ),
        Ok(Parsed::BeforeSend(kind, message)) => {
            let verdict = relay.judge(source, &message).await;
            Json(tencent::answer(kind, &verdict)).into_response()
        }
        Ok(Parsed::Events(events)) => {
            let parsed = events.into_iter().map(|e| (e, None)).collect();
            let app = param("SdkAppid").and_then(|a| a.parse().ok());
            match relay.commit(source, parsed, app).await {
                Ok(_) => Json(json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0}))
                    .into_response(),
                Err(e) => store_failed(source, e),
            }
        }
    }
}
