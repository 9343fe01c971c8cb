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
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chathook_http::ApiError;
use serde_json::json;

use super::counters::Outcome;
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

/// A refused request: its status, reason (the error code, and the counters' reason) and message.
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    message: String,
    field: Option<&'static str>,
}

impl Refusal {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason,
            message: message.into(),
            field: None,
        }
    }

    fn on(mut self, field: &'static str) -> Refusal {
        self.field = Some(field);
        self
    }

    fn into_response(self) -> Response {
        chathook_http::V1Error(ApiError {
            status: self.status,
            code: self.reason,
            message: self.message,
            field: self.field.map(str::to_string),
        })
        .into_response()
    }
}

/// An accepted request: the answer and what it did.
struct Answer {
    response: Response,
    outcome: Outcome,
}

/// The name the metrics give a request's event: WuKongIM's event or Tencent's command when chathook
/// knows it, `foreign` otherwise (a label set stays small whatever the sender sends), `-` before the
/// source is known.
fn event_label(kind: SourceKind, query: &[(String, String)]) -> String {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (name, known) = match kind {
        SourceKind::Wukongim => (
            param("event").unwrap_or_default(),
            &["user.onlinestatus", "msg.notify", "msg.offline"][..],
        ),
        SourceKind::Tencent => (
            param("CallbackCommand").unwrap_or_default(),
            &[
                "State.StateChange",
                "C2C.CallbackAfterSendMsg",
                "Group.CallbackAfterSendMsg",
                "C2C.CallbackBeforeSendMsg",
                "Group.CallbackBeforeSendMsg",
                "Group.CallbackAfterCreateGroup",
                "Group.CallbackAfterNewMemberJoin",
                "Group.CallbackAfterMemberExit",
                "Group.CallbackAfterGroupDestroyed",
                "Group.CallbackOnMemberStateChange",
                "Profile.CallbackPortraitSet",
            ][..],
        ),
    };
    if known.contains(&name) {
        name.to_string()
    } else {
        "foreign".to_string()
    }
}

async fn ingest(
    State(relay): State<Relay>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Path((id, secret)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let Some(source) = relay.authenticate(&id, &secret).await else {
        // A known source with a wrong secret is counted as its own refusal.
        let known = relay.get(&id);
        let (label, reason) = match &known {
            Some(_) => (Some(id.as_str()), "secret_wrong"),
            None => (None, "source_not_found"),
        };
        let event = known.map_or("-".to_string(), |s| event_label(s.kind, &query));
        relay.counters().record(
            label,
            &event,
            Outcome::Refused(reason),
            started.elapsed(),
            now_ms(),
        );
        return Refusal::new(
            StatusCode::NOT_FOUND,
            "relay_source_not_found",
            "no relay source at this URL",
        )
        .into_response();
    };
    let peer = peer.map(|c| c.0 .0.ip().to_canonical());
    let result =
        if !source.allowed_networks.is_empty() && !peer.is_some_and(|ip| source.admits_peer(ip)) {
            Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "network_refused",
                "this source does not take requests from this address",
            ))
        } else {
            match source.kind {
                SourceKind::Wukongim => wukongim_ingest(&relay, &source, &query, &body).await,
                SourceKind::Tencent => tencent_ingest(&relay, &source, &query, &body).await,
            }
        };
    let (response, outcome) = match result {
        Ok(a) => (a.response, a.outcome),
        Err(r) => {
            let reason = r.reason;
            (r.into_response(), Outcome::Refused(reason))
        }
    };
    let event = event_label(source.kind, &query);
    relay.counters().record(
        Some(&source.id),
        &event,
        outcome,
        started.elapsed(),
        now_ms(),
    );
    response
}

/// WuKongIM's `POST ?event=<name>`: parsed, committed, then HTTP 200 with an empty body.
async fn wukongim_ingest(
    relay: &Relay,
    source: &Source,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Answer, Refusal> {
    let event = query.iter().find(|(k, _)| k == "event").map(|(_, v)| v);
    let Some(event) = event.filter(|e| !e.is_empty()) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "event_missing",
            "WuKongIM's webhooks name their event in ?event=",
        )
        .on("event"));
    };
    let parsed = wukongim::parse(event, body).map_err(|e| {
        Refusal::new(StatusCode::BAD_REQUEST, "body_invalid", e.to_string()).on("body")
    })?;
    let ingested = relay
        .commit(source, parsed, None)
        .await
        .map_err(|e| store_failed(source, e))?;
    Ok(Answer {
        response: StatusCode::OK.into_response(),
        outcome: Outcome::Stored {
            stored: ingested.stored as u64,
            duplicates: ingested.duplicates as u64,
        },
    })
}

fn store_failed(source: &Source, e: chathook_store::StoreError) -> Refusal {
    tracing::error!(source = %source.id, error = %e, "cannot store relayed events");
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_failed",
        "the events could not be stored; send them again",
    )
}

/// A Tencent callback: the app and the signature checked, then an after-event committed and answered
/// OK, or a before-send callback answered with the hook's verdict.
async fn tencent_ingest(
    relay: &Relay,
    source: &Source,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Answer, Refusal> {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(app) = source.sdk_app_id {
        if param("SdkAppid") != Some(app.to_string().as_str()) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "app_refused",
                format!("this source takes the callbacks of SdkAppid {app} only"),
            )
            .on("SdkAppid"));
        }
    }
    if let Err(refusal) = source.admits_sign(param("Sign"), param("RequestTime"), now_ms()) {
        let message = match refusal {
            SignRefusal::Missing => {
                "Sign and RequestTime are required (the source has a token)".into()
            }
            SignRefusal::Wrong => "Sign is not sha256(token + RequestTime)".into(),
            SignRefusal::Stale => {
                format!("RequestTime is more than {} s from now", source.max_skew_s)
            }
        };
        return Err(Refusal::new(StatusCode::UNAUTHORIZED, refusal.reason(), message).on("Sign"));
    }
    let parsed = tencent::parse(&tencent::Request { query, body }).map_err(|e| {
        Refusal::new(StatusCode::BAD_REQUEST, "body_invalid", e.to_string()).on("body")
    })?;
    match parsed {
        Parsed::BeforeSend(kind, message) => {
            let verdict = relay.judge(source, &message).await;
            Ok(Answer {
                response: Json(tencent::answer(kind, &verdict)).into_response(),
                outcome: Outcome::Judged,
            })
        }
        Parsed::Events(events) => {
            let parsed = events.into_iter().map(|e| (e, None)).collect();
            let app = param("SdkAppid").and_then(|a| a.parse().ok());
            let ingested = relay
                .commit(source, parsed, app)
                .await
                .map_err(|e| store_failed(source, e))?;
            Ok(Answer {
                response: Json(json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0}))
                    .into_response(),
                outcome: Outcome::Stored {
                    stored: ingested.stored as u64,
                    duplicates: ingested.duplicates as u64,
                },
            })
        }
    }
}
