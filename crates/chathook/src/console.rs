//! The web console's files, embedded in the binary and served under `/console` without the admin key:
//! they carry no data (the page asks for the key and sends it with every API call it makes). No build
//! step: plain HTML, CSS and JavaScript modules, written for current browsers, served with a strict
//! content security policy (no inline script or style, no framing).

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY as CONTENT_SECURITY_POLICY_HEADER, CONTENT_TYPE,
    REFERRER_POLICY, X_FRAME_OPTIONS,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Each file: its name under `/console/`, its media type and its content.
const FILES: [(&str, &str, &str); 17] = [
    ("index.html", HTML, include_str!("../console/index.html")),
    ("favicon.svg", SVG, include_str!("../console/favicon.svg")),
    ("console.css", CSS, include_str!("../console/console.css")),
    ("app.js", JS, include_str!("../console/app.js")),
    ("api.js", JS, include_str!("../console/api.js")),
    ("ui.js", JS, include_str!("../console/ui.js")),
    ("overview.js", JS, include_str!("../console/overview.js")),
    ("webhooks.js", JS, include_str!("../console/webhooks.js")),
    (
        "deliveries.js",
        JS,
        include_str!("../console/deliveries.js"),
    ),
    ("charts.js", JS, include_str!("../console/charts.js")),
    ("features.js", JS, include_str!("../console/features.js")),
    ("warnings.js", JS, include_str!("../console/warnings.js")),
    ("sources.js", JS, include_str!("../console/sources.js")),
    ("filters.js", JS, include_str!("../console/filters.js")),
    ("receiver.js", JS, include_str!("../console/receiver.js")),
    ("notices.js", JS, include_str!("../console/notices.js")),
    ("position.js", JS, include_str!("../console/position.js")),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Whether `path` is one of the console's own (public) paths (`/favicon.ico`, which browsers ask every
/// site for, included).
pub fn is_console_path(path: &str) -> bool {
    path == "/favicon.ico"
        || path == "/console"
        || path == "/console/"
        || path
            .strip_prefix("/console/")
            .is_some_and(|name| FILES.iter().any(|(n, _, _)| *n == name))
}

/// The console's routes.
pub fn router() -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|| file(Path("index.html".to_string()))))
        .route(
            "/favicon.ico",
            get(|| file(Path("favicon.svg".to_string()))),
        )
        .route("/console/{name}", get(file))
}

/// What the console's pages may load and do: only its own files (no inline script or style, no
/// other origin), calls to this server, no framing by another site.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, media_type, content)) => (
            [
                (CONTENT_TYPE, *media_type),
                (CACHE_CONTROL, "no-cache"),
                (CONTENT_SECURITY_POLICY_HEADER, CONTENT_SECURITY_POLICY),
                (X_FRAME_OPTIONS, "DENY"),
                (REFERRER_POLICY, "no-referrer"),
            ],
            *content,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
