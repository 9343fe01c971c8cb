//! `POST /v1/webhooks/url-check`: every URL rule a URL breaks, as the console shows them while the
//! operator types, and the port-prefix rule for a URL change.

use axum::extract::State;
use axum::Json;
use chathook_http::{V1ErrorBody, V1Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::{find, ApiResult};
use crate::engine::WebhookEngine;
use crate::url_rules::{broken_rules, check_url, effective_port, port_prefix_conflict};

/// The ports (old, new) when changing `old_url` to `new` hits the port-prefix rule.
pub(super) fn port_prefix_change(old_url: &str, new: &url::Url) -> Option<(u16, u16)> {
    let old = url::Url::parse(old_url)
        .map(|u| effective_port(&u))
        .unwrap_or(0);
    let port = effective_port(new);
    port_prefix_conflict(old, port).then_some((old, port))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::api) struct UrlCheckReq {
    url: String,
    /// The endpoint whose URL would change: the port-prefix rule is checked against its URL.
    #[serde(default)]
    endpoint_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(in crate::api) struct UrlCheck {
    /// No rule is broken.
    valid: bool,
    /// One entry per broken rule.
    errors: Vec<BrokenRule>,
    /// Set when changing the endpoint's URL to this one needs `confirm_port_change`.
    confirm_port_change: Option<PortChange>,
}

#[derive(Serialize, ToSchema)]
pub(in crate::api) struct BrokenRule {
    code: &'static str,
    message: String,
}

#[derive(Serialize, ToSchema)]
pub(in crate::api) struct PortChange {
    from: u16,
    to: u16,
}

/// Every URL rule `url` breaks (one entry per rule), and whether changing the endpoint's URL to it
/// needs `confirm_port_change`: what the console shows as the operator types.
#[utoipa::path(post, path = "/v1/webhooks/url-check", tag = "webhooks",
    request_body = UrlCheckReq,
    responses((status = 200, body = UrlCheck), (status = "4XX", body = V1ErrorBody)))]
pub(in crate::api) async fn url_check(
    State(engine): State<WebhookEngine>,
    V1Json(req): V1Json<UrlCheckReq>,
) -> ApiResult<Json<UrlCheck>> {
    let errors: Vec<BrokenRule> = broken_rules(&req.url)
        .into_iter()
        .map(|e| BrokenRule {
            code: e.code,
            message: e.message,
        })
        .collect();
    let port_change = match (&req.endpoint_id, check_url(&req.url)) {
        (Some(id), Ok(new)) => port_prefix_change(&find(&engine, id).await?.url, &new),
        _ => None,
    };
    Ok(Json(UrlCheck {
        valid: errors.is_empty(),
        errors,
        confirm_port_change: port_change.map(|(from, to)| PortChange { from, to }),
    }))
}
