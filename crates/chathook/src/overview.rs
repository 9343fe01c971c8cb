//! `GET /v1/overview`: the server at a glance for the console (users and connections online, totals of
//! messages, events and delivery attempts since the start, endpoints by state). Totals, not rates: the
//! console divides the change between two reads by the time between them.

use axum::extract::State;
use axum::Json;
use chathook_im::Im;
use chathook_store::ServerStore;
use chathook_webhook::WebhookEngine;
use serde::Serialize;
use utoipa::ToSchema;

/// What the overview reads.
#[derive(Clone)]
pub struct Sources {
    pub im: Im,
    pub webhooks: WebhookEngine,
    pub store: std::sync::Arc<dyn ServerStore>,
}

#[derive(Serialize, ToSchema)]
pub struct Overview {
    /// Users with at least one connection.
    users_online: usize,
    connections: i64,
    /// Messages sent since the server started.
    messages_sent: u64,
    /// The event log's head: events appended so far.
    events: u64,
    /// Delivery attempts since the server started.
    attempts: Attempts,
    endpoints: Endpoints,
}

#[derive(Serialize, ToSchema)]
pub struct Attempts {
    succeeded: u64,
    failed: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Endpoints {
    total: usize,
    /// Enabled by the operator.
    enabled: usize,
    /// Enabled, not disabled by the server, and with a closed circuit breaker.
    delivering: usize,
    /// Enabled and not disabled by the server, but with the circuit breaker open (failing; probed).
    breaker_open: usize,
    /// Disabled by the operator or by the server.
    disabled: usize,
}

/// The endpoints counted by state: each is delivering, failing with its breaker open, or disabled.
fn endpoint_states(
    webhooks: &WebhookEngine,
    endpoints: &[std::sync::Arc<chathook_webhook::Endpoint>],
) -> Endpoints {
    let active: Vec<_> = endpoints
        .iter()
        .filter(|e| webhooks.health(&e.id).active(e))
        .collect();
    let breaker_open = active
        .iter()
        .filter(|e| webhooks.breaker_open(&e.id))
        .count();
    Endpoints {
        total: endpoints.len(),
        enabled: endpoints.iter().filter(|e| e.enabled).count(),
        delivering: active.len() - breaker_open,
        breaker_open,
        disabled: endpoints.len() - active.len(),
    }
}

/// The server at a glance.
#[utoipa::path(get, path = "/v1/overview", tag = "server",
    responses((status = 200, body = Overview)))]
pub async fn overview(State(o): State<Sources>) -> Json<Overview> {
    let endpoints = o.webhooks.endpoints();
    let metrics = o.webhooks.metrics();
    Json(Overview {
        users_online: o.im.presence().users_online(),
        connections: o.im.metrics().connections.get(),
        messages_sent: o.im.messages_sent_total(),
        events: o.store.head(),
        attempts: Attempts {
            succeeded: metrics.succeeded.get(),
            failed: metrics.failed.get(),
        },
        endpoints: endpoint_states(&o.webhooks, &endpoints),
    })
}
