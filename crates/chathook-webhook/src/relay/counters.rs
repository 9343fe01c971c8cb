//! What each relay source's ingest saw on this node since it started: requests, events stored and
//! left out as re-sent, before-send callbacks answered, refusals by reason, and the last request's
//! time. The API shows them per source; Prometheus gets the same as
//! `chathook_relay_requests_total{source,event,outcome}` and the ingest latency.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::format::rfc3339;
use crate::metrics::WebhookMetrics;

/// How one ingest request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its events were committed (`stored`), those re-sent within the window left out.
    Stored { stored: u64, duplicates: u64 },
    /// A before-send callback, answered with a verdict.
    Judged,
    /// Refused, with the reason (the error code it was answered with).
    Refused(&'static str),
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Stored { .. } => "stored",
            Outcome::Judged => "judged",
            Outcome::Refused(reason) => reason,
        }
    }
}

/// One source's counters. Each field only grows.
#[derive(Default)]
struct SourceCounters {
    /// Requests that named the source (refused ones too).
    received: AtomicU64,
    /// Events appended to the event log.
    stored: AtomicU64,
    /// Events left out: their message was already taken within `relay.dedup_window`.
    duplicates: AtomicU64,
    /// Before-send callbacks answered.
    judged: AtomicU64,
    /// Refused requests by reason.
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Unix ms of the last request (0: none yet).
    last_request_ms: AtomicI64,
}

/// A source's counters as the API shows them.
#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq)]
pub struct CountersView {
    pub received: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub judged: u64,
    /// Refused requests by reason (`secret_wrong`, `network_refused`, `app_refused`, `sign_missing`,
    /// `sign_wrong`, `sign_stale`, `body_invalid`, `event_missing`, `store_failed`).
    pub refused: BTreeMap<String, u64>,
    pub last_request_at: Option<String>,
}

/// Every source's counters and the metrics they feed. Cloning shares them.
#[derive(Clone, Default)]
pub struct Counters {
    by_source: Arc<Mutex<HashMap<String, Arc<SourceCounters>>>>,
    metrics: WebhookMetrics,
}

impl Counters {
    pub fn new(metrics: WebhookMetrics) -> Counters {
        Counters {
            by_source: Arc::default(),
            metrics,
        }
    }

    fn of(&self, source: &str) -> Arc<SourceCounters> {
        let mut all = self.by_source.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(source.to_string()).or_default().clone()
    }

    /// Counts one request to `source` (`None`: no source at that URL) for `event`, and its latency.
    pub fn record(
        &self,
        source: Option<&str>,
        event: &str,
        outcome: Outcome,
        latency: Duration,
        now_ms: i64,
    ) {
        let labels = vec![
            (
                "source".to_string(),
                source.unwrap_or("unknown").to_string(),
            ),
            ("event".to_string(), event.to_string()),
            ("outcome".to_string(), outcome.label().to_string()),
        ];
        self.metrics.relay_requests.get_or_create(&labels).inc();
        self.metrics
            .relay_ingest_seconds
            .observe(latency.as_secs_f64());
        let Some(source) = source else {
            return;
        };
        let c = self.of(source);
        c.received.fetch_add(1, Ordering::Relaxed);
        c.last_request_ms.fetch_max(now_ms, Ordering::Relaxed);
        match outcome {
            Outcome::Stored { stored, duplicates } => {
                c.stored.fetch_add(stored, Ordering::Relaxed);
                c.duplicates.fetch_add(duplicates, Ordering::Relaxed);
            }
            Outcome::Judged => {
                c.judged.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Refused(reason) => {
                let mut refused = c.refused.lock().unwrap_or_else(|p| p.into_inner());
                *refused.entry(reason).or_default() += 1;
            }
        }
    }

    /// What `source` saw.
    pub fn view(&self, source: &str) -> CountersView {
        let c = self.of(source);
        let last = c.last_request_ms.load(Ordering::Relaxed);
        let refused: BTreeMap<String, u64> = c
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        CountersView {
            received: c.received.load(Ordering::Relaxed),
            stored: c.stored.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            judged: c.judged.load(Ordering::Relaxed),
            refused,
            last_request_at: (last > 0).then(|| rfc3339(last)),
        }
    }

    /// Forgets a deleted source's counters.
    pub fn forget(&self, source: &str) {
        self.by_source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_adds_to_its_own_counter_and_the_last_request_moves_forward() {
        let c = Counters::default();
        let ms = Duration::from_millis(1);
        c.record(
            Some("s"),
            "msg.notify",
            Outcome::Stored {
                stored: 3,
                duplicates: 1,
            },
            ms,
            2_000,
        );
        c.record(
            Some("s"),
            "msg.notify",
            Outcome::Refused("sign_wrong"),
            ms,
            1_000,
        );
        c.record(
            Some("s"),
            "msg.notify",
            Outcome::Refused("sign_wrong"),
            ms,
            3_000,
        );
        c.record(
            Some("s"),
            "Group.CallbackBeforeSendMsg",
            Outcome::Judged,
            ms,
            3_000,
        );
        c.record(None, "-", Outcome::Refused("source_not_found"), ms, 9_000);
        let v = c.view("s");
        assert_eq!((v.received, v.stored, v.duplicates, v.judged), (4, 3, 1, 1));
        assert_eq!(v.refused, BTreeMap::from([("sign_wrong".to_string(), 2)]));
        assert_eq!(
            v.last_request_at.as_deref(),
            Some("1970-01-01T00:00:03.000Z")
        );
        assert_eq!(c.view("other"), CountersView::default());
        let series = c
            .metrics
            .relay_requests
            .get(&vec![
                ("source".to_string(), "unknown".to_string()),
                ("event".to_string(), "-".to_string()),
                ("outcome".to_string(), "source_not_found".to_string()),
            ])
            .map(|s| s.get());
        assert_eq!(series, Some(1));
    }
}
