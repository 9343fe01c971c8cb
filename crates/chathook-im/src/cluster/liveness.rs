//! Heartbeats and lost nodes: every `cluster.heartbeat_ms` this node records in the database that it
//! is alive, and reports offline (reason `node_lost`) the connections of any node silent for
//! `cluster.node_timeout_ms`; the database lets exactly one node do each take-over.

use std::sync::Arc;

use chathook_events::PresenceReason;
use chathook_store::{ClusterStore, ConnRecord};
use tokio::sync::watch;

use super::Timings;
use crate::Im;

pub(super) async fn run(
    im: Im,
    store: Arc<dyn ClusterStore>,
    timings: Timings,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(timings.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let timeout_ms = timings.node_timeout.as_millis() as i64;
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
        if let Err(e) = store.heartbeat().await {
            tracing::warn!(error = %e, "cannot record this node's heartbeat");
            continue;
        }
        let silent = match store.silent_nodes(timeout_ms).await {
            Ok(silent) => silent,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for silent nodes");
                continue;
            }
        };
        for node in silent {
            let reporting = im.clone();
            let events = Box::new(move |conns: &Vec<ConnRecord>| {
                // This node stops counting them now; the others when they apply the events.
                reporting.presence().remote().remove_node(node);
                reporting.offline_events(conns, PresenceReason::NodeLost)
            });
            match store.take_over_connections(node, timeout_ms, events).await {
                Ok(conns) if !conns.is_empty() => tracing::warn!(
                    node,
                    connections = conns.len(),
                    "a node went silent: its connections were reported offline"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(node, error = %e, "cannot take over a silent node's connections")
                }
            }
        }
    }
}
