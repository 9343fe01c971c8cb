//! In a cluster, each endpoint's dispatcher runs on one node at a time: the node holding the
//! endpoint's lease in the shared database (named `webhook:<endpoint id>`). Endpoints are spread over
//! the live nodes (those whose heartbeat is at most two thirds of `cluster.lease_ms` old) by rendezvous
//! hashing: each endpoint goes to the live node with the highest hash of (endpoint, node), so a node
//! joining or leaving moves only its own share. Every round (a third of `cluster.lease_ms`, at most a
//! second) each node takes or renews the leases of its share; one it holds but is no longer its share
//! is handed over (its dispatcher stopped, the lease given up the round after). A node that cannot
//! renew stops its dispatchers before its leases can expire; when a node dies, its endpoints fall to
//! the others' shares once it stops counting as live, and are taken when their leases expire, from the
//! durable cursor (what was delivered after it is delivered again, with the same ids). Each round also
//! follows what other nodes changed: the endpoints, their health, the feature switches. `Run` starts
//! and stops an endpoint's dispatcher as its lease comes and goes (always held on a node alone).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chathook_events::StartAt;
use chathook_store::ClusterStore;
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Notify};

use crate::dispatcher::{Context, Dispatcher};
use crate::endpoint::Endpoint;

use crate::engine::{EngineError, WebhookEngine, FEATURES_KEY};
use crate::health::Health;

/// The shared database, the lease length, and the leases this node holds.
#[derive(Clone)]
pub struct Leasing {
    store: Arc<dyn ClusterStore>,
    lease: Duration,
    /// The lease names this node held after its last round (given up at shutdown).
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

/// The live node an endpoint goes to: the highest hash of (endpoint, node) (rendezvous hashing; the
/// same answer on every node, in every version). `None` without live nodes.
pub fn share_of(endpoint_id: &str, live: &[u16]) -> Option<u16> {
    live.iter().copied().max_by_key(|node| {
        let digest = Sha256::new()
            .chain_update(endpoint_id.as_bytes())
            .chain_update(node.to_be_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first), *node)
    })
}

/// What an endpoint's dispatcher is started from (see `Dispatcher::start`), each time this node may run
/// it: alone, from the start; in a cluster, each time it takes the endpoint's lease.
pub(crate) struct Run {
    pub ctx: Arc<Context>,
    pub endpoint: watch::Receiver<Arc<Endpoint>>,
    pub health: watch::Receiver<Arc<Health>>,
    pub wake: Arc<Notify>,
    pub start: StartAt,
}

impl Run {
    /// Runs the dispatcher whenever `lease` says this node may, until `stop`; a dispatcher stopped by
    /// a lost lease lets its in-flight attempts end and moves its cursor before it goes.
    pub(crate) async fn while_leased(
        self,
        mut stop: watch::Receiver<bool>,
        mut lease: watch::Receiver<bool>,
    ) {
        loop {
            loop {
                if *stop.borrow_and_update() {
                    return;
                }
                if *lease.borrow_and_update() {
                    break;
                }
                tokio::select! {
                    changed = lease.changed() => if changed.is_err() { return },
                    changed = stop.changed() => if changed.is_err() { return },
                }
            }
            let (run_stop, run_stop_rx) = watch::channel(false);
            let dispatcher = Dispatcher::start(
                self.ctx.clone(),
                self.endpoint.clone(),
                self.health.clone(),
                self.wake.clone(),
                run_stop_rx,
                self.start,
            )
            .await;
            let dispatcher = match dispatcher {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a dispatcher; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut running = tokio::spawn(dispatcher.run());
            let finished = loop {
                tokio::select! {
                    _ = &mut running => break true,
                    changed = stop.changed() => if changed.is_err() || *stop.borrow() { break false },
                    changed = lease.changed() => if changed.is_err() || !*lease.borrow() { break false },
                }
            };
            run_stop.send_replace(true);
            if !finished {
                let _ = running.await;
            }
        }
    }
}

/// Holds leases and follows other nodes' changes until `stop`.
pub(crate) async fn hold(engine: WebhookEngine, leasing: Leasing, mut stop: watch::Receiver<bool>) {
    let round = (leasing.lease / 3).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut tick = tokio::time::interval(round);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renewed_at: Option<Instant> = None;
    let me = leasing.store.node_id();
    let window_ms = (leasing.lease * 2 / 3).as_millis() as i64;
    let mut live = vec![me];
    // Leases whose dispatchers this node stopped last round: given up this round.
    let mut handed_over: Vec<String> = Vec::new();
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
        match leasing.store.live_nodes(window_ms).await {
            Ok(nodes) => live = nodes,
            Err(e) => tracing::warn!(error = %e, "cannot read which nodes are live"),
        }
        let endpoints = engine.leased();
        let mut share = Vec::new();
        let mut handing = Vec::new();
        for (id, held) in &endpoints {
            if share_of(id, &live) == Some(me) {
                share.push(lease_name(id));
            } else if *held {
                tracing::info!(endpoint = %id, "handing this endpoint over to another node");
                engine.set_leased(id, false);
                handing.push(lease_name(id));
            }
        }
        let release: Vec<String> = std::mem::replace(&mut handed_over, handing)
            .into_iter()
            .filter(|name| !share.contains(name))
            .collect();
        if !release.is_empty() {
            if let Err(e) = leasing.store.release_leases(release).await {
                tracing::warn!(error = %e, "cannot give leases up; they expire instead");
            }
        }
        match leasing
            .store
            .acquire_leases(share, leasing.lease_ms())
            .await
        {
            Ok(held) => {
                renewed_at = Some(Instant::now());
                let held: HashSet<String> = held.into_iter().collect();
                for (id, had) in endpoints {
                    let has = held.contains(&lease_name(&id));
                    if has && !had {
                        tracing::info!(endpoint = %id, "delivering to this endpoint from this node");
                    } else if had && !has && !handed_over.contains(&lease_name(&id)) {
                        tracing::warn!(endpoint = %id, "another node took this endpoint's lease");
                    }
                    engine.set_leased(&id, has);
                }
                // Those being handed over are still this node's until the next round gives them up.
                if let Ok(mut mine) = leasing.held.lock() {
                    *mine = held
                        .into_iter()
                        .chain(handed_over.iter().cloned())
                        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_spread_over_the_live_nodes_and_a_leaving_node_moves_only_its_own() {
        let ids: Vec<String> = (0..300).map(|i| format!("ep_{i}")).collect();
        let three = [1, 2, 3];
        let mut counts = std::collections::HashMap::new();
        for id in &ids {
            *counts.entry(share_of(id, &three).unwrap()).or_insert(0) += 1;
        }
        assert!(counts.values().all(|&n| n > 60), "{counts:?}");
        // node 3 leaves: its endpoints move, the others stay where they were
        for id in &ids {
            let before = share_of(id, &three).unwrap();
            let after = share_of(id, &[1, 2]).unwrap();
            if before != 3 {
                assert_eq!(before, after, "{id}");
            }
        }
        assert_eq!(share_of("x", &[]), None);
        assert_eq!(share_of("x", &[7]), Some(7));
    }
}
