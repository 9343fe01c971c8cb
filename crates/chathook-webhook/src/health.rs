//! Endpoint health: what the server observes about an endpoint, apart from the operator's settings:
//! since when it fails, whether the server disabled it and why, whether it stopped holding the event
//! log and the gap it missed. [`HealthBook`] is its one owner: it applies one change at a time to the
//! latest state and stores it as a document of its own, so an operator's `PATCH` (the settings
//! document) and a dispatcher's failure update (this one) never overwrite each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chathook_store::WebhookStore;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::endpoint::Endpoint;

/// What the server observed about one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Health {
    /// Unix ms of the first failure since the last success.
    pub failing_since: Option<i64>,
    /// `endpoint.failing` was logged for the current run of failures: its first success logs
    /// `endpoint.recovered` and clears it.
    pub failing_reported: bool,
    /// Set when the server disabled the endpoint (410 Gone, or failing for `webhook.disable_after`);
    /// cleared when the operator enables it.
    pub server_disabled: Option<ServerDisable>,
    /// Set once it has been disabled for `webhook.hold_disabled`: the event log no longer waits for
    /// it, so events it did not take may be removed by retention.
    pub log_released: Option<LogRelease>,
    /// Events it never received because retention removed them while it was disabled (kept visible).
    pub gap: Option<Gap>,
    /// A seek the operator asked for and the dispatcher has not applied yet (whichever node runs it:
    /// it stops, and starts again from there).
    pub seek: Option<SeekRequest>,
    /// Changes stored so far: in a cluster, a node takes a stored document with a higher revision
    /// than its own (another node changed it).
    pub revision: u64,
}

/// Why and when the server disabled an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerDisable {
    pub reason: String,
    /// Unix ms.
    pub at_ms: i64,
}

impl Health {
    /// Whether `endpoint` receives deliveries: the operator enabled it and the server did not
    /// disable it.
    pub fn active(&self, endpoint: &Endpoint) -> bool {
        endpoint.enabled && self.server_disabled.is_none()
    }

    /// Unix ms since which `endpoint` has been disabled (by the operator or the server), if it is.
    pub fn disabled_since(&self, endpoint: &Endpoint) -> Option<i64> {
        if !endpoint.enabled {
            return Some(endpoint.disabled_at.unwrap_or(endpoint.updated_at));
        }
        self.server_disabled.as_ref().map(|d| d.at_ms)
    }

    /// Why a failed attempt at `now_ms` disables the endpoint, if it does (the failure-to-disable
    /// policy): a 410 Gone, or no success for `disable_after` since the first failure (this one, when
    /// it is the first).
    pub fn disable_reason(
        &self,
        gone: bool,
        now_ms: i64,
        disable_after: Duration,
    ) -> Option<String> {
        let since = self.failing_since.unwrap_or(now_ms);
        if gone {
            Some("the endpoint answered 410 Gone".to_string())
        } else if now_ms - since >= disable_after.as_millis() as i64 {
            Some(format!(
                "failing without a success since {}",
                crate::format::rfc3339(since)
            ))
        } else {
            None
        }
    }

    /// The operator enabled the endpoint: failures and the server's disable are forgotten (a gap
    /// stays visible, and a released log is taken up again by the dispatcher).
    pub fn enabled_by_operator(&mut self) {
        self.failing_since = None;
        self.server_disabled = None;
    }

    /// The health an endpoint stored before health had a document of its own (the fields lived in
    /// the endpoint's document, and a server disable cleared `enabled`). Returns whether the
    /// settings' `enabled` must be set again.
    pub fn from_legacy_document(document: &str) -> (Health, bool) {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Legacy {
            failing_since: Option<i64>,
            disabled_reason: Option<String>,
            disabled_at: Option<i64>,
            log_released: Option<LogRelease>,
            gap: Option<Gap>,
        }
        let legacy: Legacy = serde_json::from_str(document).unwrap_or_default();
        let server_disabled = legacy.disabled_reason.map(|reason| ServerDisable {
            reason,
            at_ms: legacy.disabled_at.unwrap_or(0),
        });
        let reenable = server_disabled.is_some();
        (
            Health {
                failing_since: legacy.failing_since,
                failing_reported: false,
                server_disabled,
                log_released: legacy.log_released,
                gap: legacy.gap,
                seek: None,
                revision: 0,
            },
            reenable,
        )
    }
}

/// Where an endpoint's cursor stood when it stopped holding the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRelease {
    /// The position it had handled up to.
    pub position: u64,
    /// Unix ms of the release.
    pub at_ms: i64,
}

/// Where an endpoint's cursor is to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeekRequest {
    /// The endpoint reads the events after this position.
    pub position: u64,
    /// Unix ms of the request (two requests for one position are told apart).
    pub at_ms: i64,
}

/// A run of events an endpoint missed: removed by retention before it was enabled again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub first_position: u64,
    pub last_position: u64,
    pub count: u64,
    /// Unix ms: when it stopped holding the log, and the time of the oldest event still stored when
    /// it resumed (the missed events lie between).
    pub from_ms: i64,
    pub until_ms: i64,
}

/// The owner of every endpoint's health.
pub(crate) struct HealthBook {
    store: Arc<dyn WebhookStore>,
    /// Held across each change (read, store, publish), so that changes apply one at a time, in the
    /// same order in memory and in the store.
    writing: tokio::sync::Mutex<()>,
    entries: Mutex<HashMap<String, watch::Sender<Arc<Health>>>>,
}

impl HealthBook {
    pub fn new(store: Arc<dyn WebhookStore>) -> HealthBook {
        HealthBook {
            store,
            writing: tokio::sync::Mutex::new(()),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Starts following `id` with `health`; returns a receiver of its changes.
    pub fn insert(&self, id: &str, health: Health) -> watch::Receiver<Arc<Health>> {
        let (tx, rx) = watch::channel(Arc::new(health));
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(id.to_string(), tx);
        }
        rx
    }

    /// The current health of `id` (the default for an unknown id).
    pub fn get(&self, id: &str) -> Arc<Health> {
        self.entries
            .lock()
            .ok()
            .and_then(|e| e.get(id).map(|tx| tx.borrow().clone()))
            .unwrap_or_default()
    }

    /// Applies `change` to the latest health of `id`, stores it and publishes it. Nothing happens for
    /// an endpoint that is gone or when the change changes nothing.
    pub async fn update(&self, id: &str, change: impl FnOnce(&mut Health)) {
        let _one_at_a_time = self.writing.lock().await;
        let Some(tx) = self.entries.lock().ok().and_then(|e| e.get(id).cloned()) else {
            return;
        };
        let current = tx.borrow().clone();
        let mut next = (*current).clone();
        change(&mut next);
        if next == *current {
            return;
        }
        next.revision = current.revision + 1;
        let document = serde_json::to_string(&next).unwrap_or_default();
        if let Err(e) = self.store.put_endpoint_health(id, document).await {
            tracing::error!(endpoint = %id, error = %e, "cannot store the endpoint's health");
        }
        tx.send_replace(Arc::new(next));
    }

    /// Takes `health` as `id`'s when another node stored a later revision of it.
    pub async fn follow(&self, id: &str, health: Health) {
        let _one_at_a_time = self.writing.lock().await;
        let Some(tx) = self.entries.lock().ok().and_then(|e| e.get(id).cloned()) else {
            return;
        };
        tx.send_if_modified(|h| {
            let newer = health.revision > h.revision;
            if newer {
                *h = Arc::new(health);
            }
            newer
        });
    }

    /// Stops following `id`: later updates are ignored (its stored document goes with the endpoint).
    pub async fn remove(&self, id: &str) {
        let _one_at_a_time = self.writing.lock().await;
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathook_store::{SqliteOptions, SqliteStore};

    #[test]
    fn a_410_disables_at_once_and_failing_disables_only_after_disable_after() {
        let after = Duration::from_secs(60);
        let fresh = Health::default();
        assert!(fresh
            .disable_reason(true, 1_000, after)
            .unwrap()
            .contains("410 Gone"));
        assert_eq!(
            fresh.disable_reason(false, 1_000, after),
            None,
            "a first failure"
        );
        let failing = Health {
            failing_since: Some(1_000),
            ..Health::default()
        };
        assert_eq!(failing.disable_reason(false, 60_999, after), None);
        let reason = failing.disable_reason(false, 61_000, after).unwrap();
        assert!(
            reason.starts_with("failing without a success since 1970-"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn concurrent_changes_all_apply_and_the_store_ends_as_memory_does() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn WebhookStore> =
            Arc::new(SqliteStore::open(SqliteOptions::new(dir.path())).unwrap());
        let book = Arc::new(HealthBook::new(store.clone()));
        book.insert("ep", Health::default());
        // each change reads the latest state: none is lost however they interleave
        let mut tasks = Vec::new();
        for i in 0..50i64 {
            let book = book.clone();
            tasks.push(tokio::spawn(async move {
                book.update("ep", |h| {
                    h.failing_since = Some(h.failing_since.unwrap_or(0) + i);
                })
                .await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let sum: i64 = (0..50).sum();
        assert_eq!(book.get("ep").failing_since, Some(sum));
        let stored = store.endpoint_health().await.unwrap();
        let stored: Health = serde_json::from_str(&stored[0].1).unwrap();
        assert_eq!(stored, *book.get("ep"));

        book.remove("ep").await;
        book.update("ep", |h| h.failing_since = None).await;
        let stored: Health =
            serde_json::from_str(&store.endpoint_health().await.unwrap()[0].1).unwrap();
        assert_eq!(
            stored.failing_since,
            Some(sum),
            "a removed endpoint is not written"
        );
    }

    #[test]
    fn a_legacy_server_disable_becomes_health_and_enables_the_settings_again() {
        let doc = r#"{"enabled":false,"disabled_reason":"the endpoint answered 410 Gone",
                      "disabled_at":5,"failing_since":3}"#;
        let (health, reenable) = Health::from_legacy_document(doc);
        assert!(reenable);
        assert_eq!(health.failing_since, Some(3));
        assert_eq!(
            health.server_disabled,
            Some(ServerDisable {
                reason: "the endpoint answered 410 Gone".into(),
                at_ms: 5
            })
        );
        let (health, reenable) = Health::from_legacy_document(r#"{"enabled":false}"#);
        assert!(!reenable);
        assert_eq!(health, Health::default());
    }
}
