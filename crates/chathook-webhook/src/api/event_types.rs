//! The event catalog as the API lists it, and the feature switches.

use axum::extract::State;
use axum::Json;
use chathook_http::{V1ErrorBody, V1Json};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{engine_error, ApiResult};
use crate::catalog;
use crate::endpoint::{Flavour, HookKind};
use crate::engine::WebhookEngine;
use crate::features::{Feature, Features};
use crate::format::Rendered;

#[derive(Serialize, ToSchema)]
pub(super) struct EventTypes {
    /// The events endpoints may select.
    data: Vec<ListedEvent>,
    /// The before-send hooks (tencent and standard flavours).
    before_send: Vec<ListedEvent>,
}

/// Every event and before-send hook: names per flavour, description, feature switch, example bodies.
#[utoipa::path(get, path = "/v1/webhooks/event-types", tag = "webhooks",
    responses((status = 200, body = EventTypes)))]
pub(super) async fn event_types() -> Json<EventTypes> {
    Json(EventTypes {
        data: events(),
        before_send: hooks(),
    })
}

/// The catalog with example bodies in every flavour.
fn events() -> Vec<ListedEvent> {
    catalog::rows()
        .iter()
        .map(|t| {
            let sample = catalog::sample(t.kind);
            let body = |flavour| {
                example(crate::format::render_sample(
                    flavour,
                    &sample,
                    1_400_000_000,
                ))
            };
            ListedEvent {
                name: t.kind.name(),
                description: t.description.to_string(),
                flavours: FlavourNames {
                    standard: t.kind.name(),
                    wukongim: Some(t.wukongim),
                    tencent: t.tencent.to_vec(),
                },
                feature: t.feature.map(Feature::name),
                examples: Examples {
                    standard: body(Flavour::Standard),
                    wukongim: body(Flavour::Wukongim),
                    tencent: body(Flavour::Tencent),
                },
            }
        })
        .collect()
}

/// The before-send hooks: name per flavour, description, and an example request in each flavour that
/// has hooks.
fn hooks() -> Vec<ListedEvent> {
    [HookKind::Person, HookKind::Group]
        .into_iter()
        .map(|kind| {
            let what = match kind {
                HookKind::Person => "one-to-one",
                HookKind::Group => "group",
            };
            let body = |flavour| example(crate::hooks::render_sample(flavour, kind, 1_400_000_000));
            ListedEvent {
                name: kind.name(),
                description: format!(
                    "Before a {what} message is sent: the backend allows, rewrites, rejects or drops it \
                     (synchronous, tencent and standard flavours)"
                ),
                flavours: FlavourNames {
                    standard: kind.name(),
                    wukongim: None,
                    tencent: vec![kind.tencent_command()],
                },
                feature: None,
                examples: Examples {
                    standard: body(Flavour::Standard),
                    wukongim: None,
                    tencent: body(Flavour::Tencent),
                },
            }
        })
        .collect()
}

fn example(rendered: Option<Rendered>) -> Option<Value> {
    rendered.and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
}

/// An event (or a before-send hook) as `GET /v1/webhooks/event-types` lists it.
#[derive(Serialize, ToSchema)]
pub struct ListedEvent {
    /// The native name (what endpoints select).
    pub name: &'static str,
    pub description: String,
    pub flavours: FlavourNames,
    /// The feature switch it needs, if any.
    pub feature: Option<&'static str>,
    /// An example body in each flavour that sends it.
    pub examples: Examples,
}

/// The event's name in each flavour.
#[derive(Serialize, ToSchema)]
pub struct FlavourNames {
    pub standard: &'static str,
    /// `None` when WuKongIM has no such event.
    pub wukongim: Option<&'static str>,
    /// Tencent's `CallbackCommand`s (empty when Tencent has none).
    pub tencent: Vec<&'static str>,
}

/// Example bodies, one per flavour (`None` where the flavour does not send it).
#[derive(Serialize, ToSchema)]
pub struct Examples {
    pub standard: Option<Value>,
    pub wukongim: Option<Value>,
    pub tencent: Option<Value>,
}

/// The feature switches.
#[utoipa::path(get, path = "/v1/features", tag = "features",
    responses((status = 200, body = Features)))]
pub(super) async fn get_features(State(engine): State<WebhookEngine>) -> Json<Features> {
    Json(engine.features())
}

/// Sets the feature switches (all of them; a missing one is off).
#[utoipa::path(put, path = "/v1/features", tag = "features",
    request_body = Features,
    responses((status = 200, body = Features), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn put_features(
    State(engine): State<WebhookEngine>,
    V1Json(features): V1Json<Features>,
) -> ApiResult<Json<Features>> {
    engine.set_features(features).await.map_err(engine_error)?;
    Ok(Json(features))
}
