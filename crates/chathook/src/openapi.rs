//! `GET /openapi.json`: the OpenAPI document of the REST API, made from the handlers' own descriptions
//! (`utoipa`), with the admin key as its security scheme. Public, like the console's files.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

/// The document's frame: what it is, and how calls authenticate.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "chathook",
        description = "chathook's REST API: WuKongIM's business routes (bare answers where WuKongIM's are) and chathook's own under /v1 \
                       (webhooks, features, profiles, overview). Every route needs the admin key, as the `token` \
                       header or `Authorization: Bearer`."
    ),
    modifiers(&AdminKey),
    security(("token" = []), ("bearer" = [])),
    tags(
        (name = "users", description = "WuKongIM: tokens, devices, online status, system uids, routes; profiles"),
        (name = "channels", description = "WuKongIM: channels, subscribers, blacklists and whitelists"),
        (name = "messages", description = "WuKongIM: sending, history, the CMD queue"),
        (name = "conversations", description = "WuKongIM: conversation lists and unread counts"),
        (name = "webhooks", description = "Endpoints, their events and secrets"),
        (name = "deliveries", description = "Test sends, the attempt log, dead letters, statistics"),
        (name = "features", description = "Feature switches some events need"),
        (name = "relay", description = "Relay mode: sources whose webhooks chathook takes in and delivers"),
        (name = "server", description = "The server at a glance"),
    )
)]
pub struct ApiDoc;

struct AdminKey;

impl Modify for AdminKey {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "token",
                "The admin key (WuKongIM's header)",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Serves `doc`.
pub fn route(doc: Document) -> axum::routing::MethodRouter {
    let doc = std::sync::Arc::new(doc);
    axum::routing::get(move || {
        let doc = doc.clone();
        async move { Json(doc.as_ref().clone()) }
    })
}
