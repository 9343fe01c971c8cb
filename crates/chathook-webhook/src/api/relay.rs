//! Relay sources over the admin API: create (the answer shows the ingest URL and the sign token),
//! list, show, change, delete, and rotate the ingest URL (the previous one keeps working for
//! `relay.rotation_grace`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chathook_http::{ApiError, V1Error, V1ErrorBody, V1Json};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{bad, check_description, check_sign_token, ApiResult};
use crate::clock::now_ms;
use crate::endpoint::new_id;
use crate::endpoint::MAX_HOOK_TIMEOUT_MS;
use crate::engine::WebhookEngine;
use crate::format::rfc3339;
use crate::relay::counters::CountersView;
use crate::relay::source::{
    new_secret, Source, SourceKind, DEFAULT_HOOK_DEADLINE_MS, DEFAULT_MAX_SKEW_S,
};
use crate::relay::{Relay, RelayError};

/// A source as the API shows it.
#[derive(Serialize, ToSchema)]
pub(super) struct SourceView {
    id: String,
    kind: SourceKind,
    description: String,
    /// Where the source's server sends its webhooks (WuKongIM's `webhook.httpAddr`, Tencent's
    /// callback URL). It holds the credential: keep it as secret as a key.
    ingest_url: String,
    /// Until when the ingest URL before the last rotation still works.
    previous_ingest_url_valid_until: Option<String>,
    sign_token_set: bool,
    /// Only on create.
    #[serde(skip_serializing_if = "Option::is_none")]
    sign_token: Option<String>,
    sdk_app_id: Option<u64>,
    #[schema(value_type = Vec<String>)]
    allowed_networks: Vec<IpNet>,
    max_skew_s: u64,
    hook_deadline_ms: u64,
    /// What its ingest saw on the node answering (since that node started).
    counters: CountersView,
    created_at: String,
    updated_at: String,
}

impl SourceView {
    fn of(relay: &Relay, s: &Source, with_token: bool) -> SourceView {
        SourceView {
            id: s.id.clone(),
            kind: s.kind,
            description: s.description.clone(),
            ingest_url: relay.ingest_url(s),
            previous_ingest_url_valid_until: s
                .previous_secret
                .as_ref()
                .filter(|(_, until)| *until > now_ms())
                .map(|(_, until)| rfc3339(*until)),
            sign_token_set: s.sign_token.is_some(),
            sign_token: s.sign_token.clone().filter(|_| with_token),
            sdk_app_id: s.sdk_app_id,
            allowed_networks: s.allowed_networks.clone(),
            max_skew_s: s.max_skew_s,
            hook_deadline_ms: s.hook_deadline_ms,
            counters: relay.counters().view(&s.id),
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct SourceList {
    data: Vec<SourceView>,
}

fn relay_error(e: RelayError) -> V1Error {
    tracing::error!(error = %e, "relay sources");
    V1Error(ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "relay_failed",
        message: e.to_string(),
        field: None,
    })
}

/// The most networks a source lists.
const MAX_NETWORKS: usize = 64;
/// The largest `max_skew_s`.
const MAX_SKEW_S: u64 = 3600;

/// The settings a create or a change may give, checked.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct SourceSettings {
    #[serde(default)]
    description: Option<String>,
    /// Tencent: the callback token (`Sign`); `null` removes it.
    #[serde(default, deserialize_with = "crate::nullable::some_nullable")]
    #[schema(value_type = Option<String>)]
    sign_token: Option<Option<String>>,
    /// Tencent: the only `SdkAppid` taken; `null`: any.
    #[serde(default, deserialize_with = "crate::nullable::some_nullable")]
    #[schema(value_type = Option<u64>)]
    sdk_app_id: Option<Option<u64>>,
    /// CIDR networks ingest requests may come from; empty or `null`: any.
    #[serde(default, deserialize_with = "crate::nullable::some_nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    allowed_networks: Option<Option<Vec<String>>>,
    #[serde(default)]
    max_skew_s: Option<u64>,
    /// Tencent: how long a before-send callback waits for the hook, 1 to 2000 ms.
    #[serde(default)]
    hook_deadline_ms: Option<u64>,
}

impl SourceSettings {
    /// Applies the settings given to `s`.
    fn apply(self, s: &mut Source) -> ApiResult<()> {
        if let Some(d) = self.description {
            check_description(&d)?;
            s.description = d;
        }
        if let Some(token) = self.sign_token {
            if let Some(t) = &token {
                check_sign_token(t)?;
            }
            s.sign_token = token;
        }
        if let Some(app) = self.sdk_app_id {
            s.sdk_app_id = app;
        }
        if let Some(nets) = self.allowed_networks {
            let nets = nets.unwrap_or_default();
            if nets.len() > MAX_NETWORKS {
                return Err(bad(
                    "allowed_networks",
                    "too_many_networks",
                    format!("allowed_networks lists at most {MAX_NETWORKS} networks"),
                ));
            }
            s.allowed_networks = nets
                .iter()
                .map(|n| {
                    n.parse::<IpNet>()
                        .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            bad(
                                "allowed_networks",
                                "network_invalid",
                                format!("{n:?} is not a CIDR network or an address"),
                            )
                        })
                })
                .collect::<ApiResult<_>>()?;
        }
        if let Some(skew) = self.max_skew_s {
            if !(1..=MAX_SKEW_S).contains(&skew) {
                return Err(bad(
                    "max_skew_s",
                    "max_skew_out_of_range",
                    format!("max_skew_s must be between 1 and {MAX_SKEW_S}"),
                ));
            }
            s.max_skew_s = skew;
        }
        if let Some(d) = self.hook_deadline_ms {
            if !(1..=MAX_HOOK_TIMEOUT_MS).contains(&d) {
                return Err(bad(
                    "hook_deadline_ms",
                    "hook_deadline_out_of_range",
                    format!("hook_deadline_ms must be between 1 and {MAX_HOOK_TIMEOUT_MS}"),
                ));
            }
            s.hook_deadline_ms = d;
        }
        Ok(())
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateReq {
    kind: SourceKind,
    #[serde(default)]
    description: Option<String>,
    /// Tencent: the callback token `Sign` is made with.
    #[serde(default)]
    sign_token: Option<String>,
    /// Tencent: the only `SdkAppid` taken.
    #[serde(default)]
    sdk_app_id: Option<u64>,
    /// CIDR networks ingest requests may come from; empty: any.
    #[serde(default)]
    allowed_networks: Option<Vec<String>>,
    /// Tencent: how far `RequestTime` may be from now (default 60).
    #[serde(default)]
    max_skew_s: Option<u64>,
    /// Tencent: how long a before-send callback waits for the hook (default 1500 ms).
    #[serde(default)]
    hook_deadline_ms: Option<u64>,
}

impl CreateReq {
    fn settings(self) -> SourceSettings {
        SourceSettings {
            description: self.description,
            sign_token: self.sign_token.map(Some),
            sdk_app_id: self.sdk_app_id.map(Some),
            allowed_networks: self.allowed_networks.map(Some),
            max_skew_s: self.max_skew_s,
            hook_deadline_ms: self.hook_deadline_ms,
        }
    }
}

/// Creates a relay source; the answer is the only one that shows its `sign_token`.
#[utoipa::path(post, path = "/v1/relay/sources", tag = "relay",
    request_body = CreateReq,
    responses((status = 201, body = SourceView), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn create(
    State(engine): State<WebhookEngine>,
    V1Json(req): V1Json<CreateReq>,
) -> ApiResult<(StatusCode, Json<SourceView>)> {
    let now = now_ms();
    let kind = req.kind;
    let mut s = Source {
        id: new_id("src"),
        kind,
        description: String::new(),
        secret: new_secret(),
        previous_secret: None,
        sign_token: None,
        sdk_app_id: None,
        allowed_networks: Vec::new(),
        max_skew_s: DEFAULT_MAX_SKEW_S,
        hook_deadline_ms: DEFAULT_HOOK_DEADLINE_MS,
        created_at: now,
        updated_at: now,
    };
    req.settings().apply(&mut s)?;
    let relay = engine.relay();
    relay.put(s.clone()).await.map_err(relay_error)?;
    Ok((StatusCode::CREATED, Json(SourceView::of(relay, &s, true))))
}

/// Every relay source.
#[utoipa::path(get, path = "/v1/relay/sources", tag = "relay",
    responses((status = 200, body = SourceList), (status = 500, body = V1ErrorBody)))]
pub(super) async fn list(State(engine): State<WebhookEngine>) -> ApiResult<Json<SourceList>> {
    let relay = engine.relay();
    relay.reload().await.map_err(relay_error)?;
    let data = relay
        .list()
        .iter()
        .map(|s| SourceView::of(relay, s, false))
        .collect();
    Ok(Json(SourceList { data }))
}

async fn find(relay: &Relay, id: &str) -> ApiResult<std::sync::Arc<Source>> {
    relay.reload().await.map_err(relay_error)?;
    relay.get(id).ok_or_else(|| {
        V1Error(ApiError::not_found(
            "relay_source_not_found",
            format!("no relay source {id}"),
        ))
    })
}

/// One relay source.
#[utoipa::path(get, path = "/v1/relay/sources/{id}", tag = "relay",
    params(("id" = String, Path, description = "The source's id")),
    responses((status = 200, body = SourceView), (status = 404, body = V1ErrorBody)))]
pub(super) async fn show(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
) -> ApiResult<Json<SourceView>> {
    let relay = engine.relay();
    let s = find(relay, &id).await?;
    Ok(Json(SourceView::of(relay, &s, false)))
}

/// Changes a relay source's settings (only those given).
#[utoipa::path(patch, path = "/v1/relay/sources/{id}", tag = "relay",
    params(("id" = String, Path, description = "The source's id")),
    request_body = SourceSettings,
    responses((status = 200, body = SourceView), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn patch(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    V1Json(req): V1Json<SourceSettings>,
) -> ApiResult<Json<SourceView>> {
    let relay = engine.relay();
    let mut s = (*find(relay, &id).await?).clone();
    req.apply(&mut s)?;
    s.updated_at = now_ms();
    relay.put(s.clone()).await.map_err(relay_error)?;
    Ok(Json(SourceView::of(relay, &s, false)))
}

/// Deletes a relay source: its ingest URL stops working at once. Events already taken stay in the
/// event log and are delivered.
#[utoipa::path(delete, path = "/v1/relay/sources/{id}", tag = "relay",
    params(("id" = String, Path, description = "The source's id")),
    responses((status = 204), (status = 404, body = V1ErrorBody)))]
pub(super) async fn remove(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if engine.relay().delete(&id).await.map_err(relay_error)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(V1Error(ApiError::not_found(
            "relay_source_not_found",
            format!("no relay source {id}"),
        )))
    }
}

/// Gives the source a new ingest URL; the previous one keeps working for `relay.rotation_grace`.
#[utoipa::path(post, path = "/v1/relay/sources/{id}/rotate", tag = "relay",
    params(("id" = String, Path, description = "The source's id")),
    responses((status = 200, body = SourceView), (status = 404, body = V1ErrorBody)))]
pub(super) async fn rotate(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
) -> ApiResult<Json<SourceView>> {
    let relay = engine.relay();
    let mut s = (*find(relay, &id).await?).clone();
    let until = now_ms() + relay.config().rotation_grace.as_millis() as i64;
    s.previous_secret = Some((std::mem::replace(&mut s.secret, new_secret()), until));
    s.updated_at = now_ms();
    relay.put(s.clone()).await.map_err(relay_error)?;
    Ok(Json(SourceView::of(relay, &s, false)))
}
