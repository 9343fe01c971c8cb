//! `GET /v1/overview`: the server at a glance for the console (users and connections online, totals of
//! messages, events and delivery attempts since the start, endpoints by state). Totals, not rates: the
//! console divides the change between two reads by the time between them.

use axum::extract::State;
use axum::Json;
use chathook_events::EventLog;
use chathook_im::Im;
use chathook_store::SqliteStore;
use chathook_webhook::WebhookEngine;
use serde_json::{json, Value};

/// What the overview reads.
#[derive(Clone)]
pub struct Overview {
    pub im: Im,
    pub webhooks: WebhookEngine,
    pub store: SqliteStore,
}

pub async fn overview(State(o): State<Overview>) -> Json<Value> {
    let endpoints = o.webhooks.endpoints();
    let enabled = endpoints.iter().filter(|e| e.enabled).count();
    let active = endpoints
        .iter()
        .filter(|e| o.webhooks.health(&e.id).active(e))
        .count();
    let metrics = o.webhooks.metrics();
    Json(json!({
        "users_online": o.im.presence().users_online(),
        "connections": o.im.metrics().connections.get(),
        "messages_sent": o.im.messages_sent_total(),
        "events": o.store.head(),
        "attempts": {"succeeded": metrics.succeeded.get(), "failed": metrics.failed.get()},
        "endpoints": {"total": endpoints.len(), "enabled": enabled, "delivering": active},
    }))
}
