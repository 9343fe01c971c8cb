//! In a cluster, each endpoint's dispatcher runs on one node at a time: the node holding the
//! endpoint's lease in the shared database (named `webhook:<endpoint id>`). Every round (a third of
//! `cluster.lease_ms`, at most a second) each node renews the leases it holds and takes those that are
//! free or expired; a node that cannot renew stops its dispatchers before its leases can expire, and
//! the node that takes one over starts from the endpoint's durable cursor (what was delivered after it
//! is delivered again, with the same ids). Each round also follows what other nodes changed: the
//! endpoints, their health, the feature switches.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chathook_store::ClusterStore;
use tokio::sync::watch;

use crate::engine::{EngineError, WebhookEngine, FEATURES_KEY};
use crate::health::Health;

/// The shared database, the lease length, and the leases this node holds.
#[derive(Clone)]
pub struct Leasing {
    store: Arc<dyn ClusterStore>,
    lease: Duration,
    /// The lease names this node held after its last round.
    held: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Leasing {
    pub fn new(store: Arc<dyn ClusterStore>, lease: Duration) -> Leasing {
        Leasing {
            store,
            lease,
            held: Arc::default(),
        }
    }

    fn lease_ms(&self) -> i64 {
        self.lease.as_millis() as i64
    }

    /// Gives up every lease this node holds (its dispatchers have stopped).
    pub(crate) async fn release_all(&self) {
        let held = self.held.lock().map(|h| h.clone()).unwrap_or_default();
        if let Err(e) = self.store.release_leases(held).await {
            tracing::warn!(error = %e, "cannot release the webhook leases; they expire instead");
        }
    }
}

fn lease_name(endpoint_id: &str) -> String {
    format!("webhook:{endpoint_id}")
}

/// Holds leases and follows other nodes' changes until `stop`.
pub(crate) async fn hold(engine: WebhookEngine, leasing: Leasing, mut stop: watch::Receiver<bool>) {
    let round = (leasing.lease / 3).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut tick = tokio::time::interval(round);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renewed_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        if let Err(e) = follow(&engine).await {
            tracing::warn!(error = %e, "cannot read the endpoints other nodes changed");
        }
        let endpoints = engine.leased();
        let names = endpoints.iter().map(|(id, _)| lease_name(id)).collect();
        match leasing
            .store
            .acquire_leases(names, leasing.lease_ms())
            .await
        {
            Ok(held) => {
                renewed_at = Some(Instant::now());
                let held: HashSet<String> = held.into_iter().collect();
                for (id, had) in endpoints {
                    let has = held.contains(&lease_name(&id));
                    if has && !had {
                        tracing::info!(endpoint = %id, "delivering to this endpoint from this node");
                    } else if had && !has {
                        tracing::warn!(endpoint = %id, "another node took this endpoint's lease");
                    }
                    engine.set_leased(&id, has);
                }
                if let Ok(mut mine) = leasing.held.lock() {
                    *mine = held.into_iter().collect();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the webhook leases");
                // Stop before they can expire, so that two nodes never deliver to one endpoint.
                if renewed_at.is_none_or(|at| at.elapsed() >= leasing.lease * 2 / 3) {
                    for (id, _) in endpoints {
                        engine.set_leased(&id, false);
                    }
                }
            }
        }
    }
}

/// Takes the endpoints, health documents and feature switches as the store has them.
pub(crate) async fn follow(engine: &WebhookEngine) -> Result<(), EngineError> {
    let store = engine.store().clone();
    let stored = store.endpoints().await?;
    let mut health = HashMap::new();
    for (id, doc) in store.endpoint_health().await? {
        if let Ok(h) = serde_json::from_str::<Health>(&doc) {
            health.insert(id, h);
        }
    }
    engine.follow_stored(stored, health).await?;
    if let Some(text) = store.setting(FEATURES_KEY).await? {
        if let Ok(features) = serde_json::from_str(&text) {
            engine.follow_features(features);
        }
    }
    Ok(())
}
