//! The webhook engine's Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type Labels = Vec<(String, String)>;

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// Cloning shares the metrics.
#[derive(Clone)]
pub struct WebhookMetrics {
    /// By endpoint, event and outcome (`success`, `failure`, `dead_letter`).
    pub deliveries: Family<Labels, Counter>,
    pub attempt_latency: Family<Labels, Histogram, fn() -> Histogram>,
    pub queue_depth: Family<Labels, Gauge>,
    pub oldest_pending_age_seconds: Family<Labels, Gauge>,
    pub retries: Family<Labels, Counter>,
    pub dead_letters: Family<Labels, Counter>,
    /// 1 while the endpoint's breaker is open.
    pub breaker_open: Family<Labels, Gauge>,
    pub attempt_log_dropped: Counter,
    /// Times a dispatcher woke up, all endpoints together (what idle endpoints cost).
    pub dispatcher_wakeups: Counter,
    /// Attempts that succeeded, all endpoints together (the console's overview; not exported, the
    /// families above carry the same by endpoint).
    pub succeeded: Counter,
    /// Attempts that failed (or hooks that gave no verdict), all endpoints together.
    pub failed: Counter,
    /// Events an endpoint selected but its sources or filters left out, by endpoint.
    pub filtered: Family<Labels, Counter>,
    /// Relay ingest requests by source, event and outcome.
    pub relay_requests: Family<Labels, Counter>,
    /// How long an ingest request took to answer (after its commit, or the hook's verdict).
    pub relay_ingest_seconds: Histogram,
    /// The label sets each endpoint's `deliveries` series were made with, so that deleting the
    /// endpoint removes them all (added to on a series' first attempt only).
    delivery_series: Arc<Mutex<HashMap<String, Vec<Labels>>>>,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        WebhookMetrics {
            deliveries: Family::default(),
            attempt_latency: Family::new_with_constructor(latency_histogram),
            queue_depth: Family::default(),
            oldest_pending_age_seconds: Family::default(),
            retries: Family::default(),
            dead_letters: Family::default(),
            breaker_open: Family::default(),
            attempt_log_dropped: Counter::default(),
            dispatcher_wakeups: Counter::default(),
            succeeded: Counter::default(),
            failed: Counter::default(),
            filtered: Family::default(),
            relay_requests: Family::default(),
            relay_ingest_seconds: latency_histogram(),
            delivery_series: Arc::default(),
        }
    }
}

impl WebhookMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "webhook_deliveries",
            "Webhook attempts by endpoint, event and outcome",
            self.deliveries.clone(),
        );
        registry.register(
            "webhook_attempt_latency_seconds",
            "Webhook attempt latency",
            self.attempt_latency.clone(),
        );
        registry.register(
            "webhook_queue_depth",
            "Events not yet handled by an endpoint",
            self.queue_depth.clone(),
        );
        registry.register(
            "webhook_oldest_pending_age_seconds",
            "Age of the oldest delivery waiting for a retry",
            self.oldest_pending_age_seconds.clone(),
        );
        registry.register("webhook_retries", "Retried attempts", self.retries.clone());
        registry.register(
            "webhook_dead_letters",
            "Deliveries dead-lettered",
            self.dead_letters.clone(),
        );
        registry.register(
            "webhook_breaker_open",
            "1 while an endpoint's circuit breaker is open",
            self.breaker_open.clone(),
        );
        registry.register(
            "webhook_attempt_log_dropped",
            "Attempt records dropped because the attempt log fell behind",
            self.attempt_log_dropped.clone(),
        );
        registry.register(
            "webhook_filtered",
            "Events an endpoint selected but its sources or filters left out",
            self.filtered.clone(),
        );
        registry.register(
            "relay_requests",
            "Relay ingest requests by source, event and outcome",
            self.relay_requests.clone(),
        );
        registry.register(
            "relay_ingest_seconds",
            "Time to answer a relay ingest request (after its commit or the hook's verdict)",
            self.relay_ingest_seconds.clone(),
        );
        registry.register(
            "webhook_dispatcher_wakeups",
            "Times a dispatcher woke up, all endpoints together",
            self.dispatcher_wakeups.clone(),
        );
    }

    /// Counts an event `endpoint` left out by its sources or filters.
    pub fn count_filtered(&self, endpoint: &str) {
        self.filtered.get_or_create(&endpoint_label(endpoint)).inc();
    }

    /// How many events `endpoint` left out by its sources or filters (on this node, since it started).
    pub fn filtered_of(&self, endpoint: &str) -> u64 {
        self.filtered
            .get(&endpoint_label(endpoint))
            .map_or(0, |c| c.get())
    }

    /// Counts one attempt of `endpoint` (`event` on the wire, `outcome`) and observes its latency.
    pub fn count_attempt(&self, endpoint: &str, event: &str, outcome: &str, latency: Duration) {
        let mut labels = endpoint_label(endpoint);
        labels.push(("event".into(), event.into()));
        labels.push(("outcome".into(), outcome.into()));
        // One lookup on the common path; the guard is gone before the family is written to.
        let known = self.deliveries.get(&labels).map(|c| c.inc()).is_some();
        if !known {
            self.deliveries.get_or_create(&labels).inc();
            self.delivery_series
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(endpoint.to_string())
                .or_default()
                .push(labels);
        }
        match outcome {
            "failure" | "dead_letter" => self.failed.inc(),
            _ => self.succeeded.inc(),
        };
        self.attempt_latency
            .get_or_create(&endpoint_label(endpoint))
            .observe(latency.as_secs_f64());
    }
}

impl WebhookMetrics {
    /// Removes every series of a deleted endpoint, so `/metrics` stops reporting it.
    pub fn forget_endpoint(&self, endpoint: &str) {
        let labels = endpoint_label(endpoint);
        self.attempt_latency.remove(&labels);
        self.queue_depth.remove(&labels);
        self.oldest_pending_age_seconds.remove(&labels);
        self.retries.remove(&labels);
        self.dead_letters.remove(&labels);
        self.breaker_open.remove(&labels);
        self.filtered.remove(&labels);
        let series = self
            .delivery_series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(endpoint)
            .unwrap_or_default();
        for labels in series {
            self.deliveries.remove(&labels);
        }
    }
}

pub fn endpoint_label(id: &str) -> Labels {
    vec![("endpoint".to_string(), id.to_string())]
}
