//! `GET /v1/overview`: the server at a glance for the console (users and connections online, totals of
//! messages, events and delivery attempts since the start, endpoints by state). Totals, not rates: the
//! console divides the change between two reads by the time between them. In a cluster each node
//! publishes its own figures to the shared store every heartbeat ([`publish`]) and the overview sums
//! every live node's, listing them per node too.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use chathook_im::Im;
use chathook_store::{ClusterStore, ServerStore};
use chathook_webhook::WebhookEngine;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::ToSchema;

/// What the overview reads.
#[derive(Clone)]
pub struct Sources {
    pub im: Im,
    pub webhooks: WebhookEngine,
    pub store: Arc<dyn ServerStore>,
    /// In a cluster: the shared store with the other nodes' figures, and how old a node's figures may
    /// be before the node no longer counts (`cluster.node_timeout_ms`).
    pub cluster: Option<(Arc<dyn ClusterStore>, Duration)>,
}

/// What one node counts itself: published to the shared store in a cluster, summed by the overview.
#[derive(Serialize, Deserialize, Default, Clone, ToSchema)]
pub struct NodeFigures {
    /// Connections this node holds.
    connections: i64,
    /// Messages sent through this node since it started.
    messages_sent: u64,
    /// Delivery attempts this node made since it started.
    attempts: Attempts,
    /// The ids of the endpoints this node delivers whose circuit breaker is open.
    #[serde(default)]
    breaker_open: Vec<String>,
}

/// A node's figures as the overview lists them.
#[derive(Serialize, ToSchema)]
pub struct NodeRow {
    node: u16,
    /// How old these figures are (0 for the node that answers).
    age_ms: i64,
    #[serde(flatten)]
    figures: NodeFigures,
}

#[derive(Serialize, ToSchema)]
pub struct Overview {
    /// Users with at least one connection (on any node).
    users_online: usize,
    /// Connections held, summed over the nodes.
    connections: i64,
    /// Messages sent since each node started, summed.
    messages_sent: u64,
    /// The event log's head: events appended so far.
    events: u64,
    /// Delivery attempts since each node started, summed.
    attempts: Attempts,
    endpoints: Endpoints,
    /// In a cluster, each live node's own figures; absent on a single server.
    #[serde(skip_serializing_if = "Option::is_none")]
    nodes: Option<Vec<NodeRow>>,
}

#[derive(Serialize, Deserialize, Default, Clone, Copy, ToSchema)]
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

/// This node's figures, read now.
fn figures_here(o: &Sources) -> NodeFigures {
    let metrics = o.webhooks.metrics();
    NodeFigures {
        connections: o.im.metrics().connections.get(),
        messages_sent: o.im.messages_sent_total(),
        attempts: Attempts {
            succeeded: metrics.succeeded.get(),
            failed: metrics.failed.get(),
        },
        breaker_open: o.webhooks.breaker_open_here(),
    }
}

/// In a cluster: publishes this node's figures every `every` until `stop`.
pub async fn publish(
    o: Sources,
    store: Arc<dyn ClusterStore>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let doc = serde_json::to_string(&figures_here(&o));
        match doc {
            Ok(doc) => {
                if let Err(e) = store.publish_figures(&doc).await {
                    tracing::warn!(error = %e, "cannot publish this node's figures");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode this node's figures"),
        }
    }
}

/// Every live node's figures (this node's read now, the others' as they last published them).
async fn cluster_figures(
    o: &Sources,
    store: &Arc<dyn ClusterStore>,
    window: Duration,
) -> Vec<NodeRow> {
    let here = store.node_id();
    let mut rows = vec![NodeRow {
        node: here,
        age_ms: 0,
        figures: figures_here(o),
    }];
    match store.node_figures(window.as_millis() as i64).await {
        Ok(published) => {
            for (node, age_ms, doc) in published.into_iter().filter(|p| p.0 != here) {
                match serde_json::from_str::<NodeFigures>(&doc) {
                    Ok(figures) => rows.push(NodeRow {
                        node,
                        age_ms,
                        figures,
                    }),
                    Err(e) => tracing::warn!(node, error = %e, "a node's figures cannot be read"),
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the other nodes' figures"),
    }
    rows.sort_by_key(|r| r.node);
    rows
}

/// The endpoints counted by state: each is delivering, failing with its breaker open, or disabled.
fn endpoint_states(
    webhooks: &WebhookEngine,
    endpoints: &[Arc<chathook_webhook::Endpoint>],
    breaker_open: &std::collections::HashSet<&str>,
) -> Endpoints {
    let active: Vec<_> = endpoints
        .iter()
        .filter(|e| webhooks.health(&e.id).active(e))
        .collect();
    let breaker_open = active
        .iter()
        .filter(|e| breaker_open.contains(e.id.as_str()))
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
    let nodes = match &o.cluster {
        Some((store, window)) => cluster_figures(&o, store, *window).await,
        None => vec![NodeRow {
            node: 0,
            age_ms: 0,
            figures: figures_here(&o),
        }],
    };
    let breaker_open = nodes
        .iter()
        .flat_map(|n| n.figures.breaker_open.iter().map(String::as_str))
        .collect();
    let endpoints = endpoint_states(&o.webhooks, &o.webhooks.endpoints(), &breaker_open);
    let sum = |f: fn(&NodeFigures) -> u64| nodes.iter().map(|n| f(&n.figures)).sum::<u64>();
    Json(Overview {
        users_online: o.im.presence().users_online(),
        connections: nodes.iter().map(|n| n.figures.connections).sum(),
        messages_sent: sum(|f| f.messages_sent),
        events: o.store.head(),
        attempts: Attempts {
            succeeded: sum(|f| f.attempts.succeeded),
            failed: sum(|f| f.attempts.failed),
        },
        endpoints,
        nodes: o.cluster.is_some().then_some(nodes),
    })
}
