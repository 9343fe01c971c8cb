//! `/metrics`: the Prometheus registry every part registers its metrics in, with the store's writer
//! counters and the event log's gauges, and the handler that refreshes the gauges on each scrape and
//! encodes the registry.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use chathook_store::ServerStore;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The event log's gauges, refreshed on each scrape.
#[derive(Clone, Default)]
pub(crate) struct LogGauges {
    head: Gauge,
    /// Events stored in the log (from the oldest to the head).
    events: Gauge,
    /// The lowest position a consumer holding the log has acknowledged (retention keeps what follows).
    held_from: Gauge,
}

/// A registry (prefix `chathook_`) with the store's writer counters and the event log's gauges.
pub(crate) fn registry(store: &dyn ServerStore) -> (Registry, LogGauges) {
    let mut registry = Registry::with_prefix("chathook");
    let writer = store.writer_metrics();
    registry.register(
        "store_commits",
        "Durable commits of the store's writer",
        writer.commits,
    );
    registry.register(
        "store_writes",
        "Writes committed (several per commit)",
        writer.jobs,
    );
    registry.register(
        "store_failed_commits",
        "Commits that failed",
        writer.failed_commits,
    );
    registry.register(
        "store_log_lock_seconds",
        "PostgreSQL: how long each commit that appended events held the event log's head row \
         (its mean bounds the commits per second of the whole cluster)",
        writer.log_lock_seconds,
    );
    let gauges = LogGauges::default();
    registry.register(
        "event_log_head",
        "Position of the newest event",
        gauges.head.clone(),
    );
    registry.register(
        "event_log_events",
        "Events stored in the event log",
        gauges.events.clone(),
    );
    registry.register(
        "event_log_held_from",
        "Lowest position acknowledged by a consumer holding the log (the head when none holds it)",
        gauges.held_from.clone(),
    );
    (registry, gauges)
}

/// State of the `/metrics` handler.
#[derive(Clone)]
pub(crate) struct MetricsState {
    pub registry: Arc<Registry>,
    pub store: Arc<dyn ServerStore>,
    pub gauges: LogGauges,
}

pub(crate) async fn metrics(State(state): State<MetricsState>) -> impl IntoResponse {
    let head = state.store.head();
    state.gauges.head.set(head as i64);
    if let Ok(oldest) = state.store.oldest().await {
        let stored = oldest.map_or(0, |(first, _)| head.saturating_sub(first) + 1);
        state.gauges.events.set(stored as i64);
    }
    if let Ok(held) = state.store.held_from().await {
        state.gauges.held_from.set(held.map_or(head, |p| p) as i64);
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}
