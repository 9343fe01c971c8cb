//! A node among several (`cluster.nats_url` set, one PostgreSQL shared): what crosses nodes.
//!
//! The shared event log is the one order of the cluster: its positions are gap-free and committed in
//! order across nodes, and a channel's messages hold positions in seq order. Each node publishes each
//! of its commits (the events with their positions, and how to deliver its messages) on its NATS
//! subject, and applies every commit, its own and the others', in position order (`relay`): it
//! delivers the messages to its own connections and follows the other nodes' connections from their
//! presence events. A commit that does not arrive through NATS in time is read from the database, so
//! NATS can lose a message without a connection losing one or seeing two out of order. Orders for
//! other nodes (kick a connection they hold, reload a channel or the system uids) go the same way.
//!
//! `liveness`: each node records a heartbeat in the database; the connections of a node silent for
//! `cluster.node_timeout_ms` are reported offline (reason `node_lost`) by exactly one other node.

mod liveness;
mod relay;
pub(crate) mod wire;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::ConnectOptions;
use chathook_events::Event;
use chathook_store::{ClusterStore, CommitNote, Committed, StoreError};
use tokio::sync::mpsc;

use crate::messaging::Origin;
use crate::Im;
use wire::{CommitRecord, Order, Route, Wire};

/// Commits waiting for this node's relay; beyond it a commit is read back from the database.
const LOCAL_QUEUE: usize = 65_536;
/// Commits and orders waiting to be published; beyond it, other nodes read commits from the database
/// (an order beyond it is lost, and logged).
const PUBLISH_QUEUE: usize = 65_536;

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach NATS at cluster.nats_url: {0}")]
    Nats(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("this node already joined its cluster")]
    AlreadyJoined,
}

/// This node's part in the cluster.
pub(crate) struct Cluster {
    node_id: u16,
    /// The shared database's coordination (heartbeats; leaving at shutdown).
    store: Arc<dyn ClusterStore>,
    /// To the publisher (bounded: a full queue drops, and other nodes read the database instead).
    outgoing: mpsc::Sender<Wire>,
}

/// How a message of this node is delivered, carried with its commit (`NewMessage::note`) to the
/// commit's record, where it becomes the message's [`Route`].
pub(crate) struct RouteNote {
    origin: Origin,
    /// A CMD message to listed users: its recipients.
    listed: Option<Vec<String>>,
}

impl RouteNote {
    /// The note for a message from `origin` (to `listed` users, for a CMD message to them).
    pub(crate) fn note(origin: Origin, listed: Option<Vec<String>>) -> CommitNote {
        CommitNote(Arc::new(RouteNote { origin, listed }))
    }
}

impl Cluster {
    /// Tells the other nodes that this one stopped, once it holds no connection: they stop counting it
    /// as live (its webhook endpoints go to their shares) at once.
    pub(crate) async fn leave(&self) {
        if let Err(e) = self.store.leave().await {
            tracing::warn!(error = %e, "cannot record that this node leaves; the others see it go silent");
        }
    }

    /// Asks the other nodes to do `order`.
    pub(crate) fn tell(&self, order: Order) {
        if self.outgoing.try_send(Wire::Order(order)).is_err() {
            tracing::warn!("the cluster's publish queue is full: an order to other nodes is lost");
        }
    }

    /// This node's record of a commit, with the routes its messages carried.
    fn record(&self, committed: &Committed) -> Arc<CommitRecord> {
        let routes = committed
            .notes
            .iter()
            .filter_map(|(message_id, note)| {
                let note = note.get::<RouteNote>()?;
                Some(Route {
                    message_id: *message_id,
                    origin: note.origin,
                    listed: note.listed.clone(),
                })
            })
            .collect();
        Arc::new(CommitRecord {
            node: self.node_id,
            first: committed.first_position,
            events: committed.events.clone(),
            routes,
        })
    }
}

/// Set once by [`Im::join_cluster`].
pub(crate) type ClusterSlot = OnceLock<Arc<Cluster>>;

/// In a cluster, a connection id is the node id shifted by this many bits, plus the node's counter.
pub(crate) const CONN_ID_NODE_SHIFT: u32 = 40;

/// The cluster's settings as durations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    pub heartbeat: Duration,
    pub node_timeout: Duration,
    pub gap_wait: Duration,
}

impl Im {
    /// Joins the cluster of `cluster.nats_url` over the shared `store`: publishes this node's commits,
    /// applies every node's in log order, follows the other nodes' connections (loaded now), and
    /// watches the nodes' heartbeats. Call once, after [`Im::start`] and before serving.
    pub async fn join_cluster(&self, store: Arc<dyn ClusterStore>) -> Result<(), ClusterError> {
        if self.cluster().is_some() {
            return Err(ClusterError::AlreadyJoined);
        }
        let config = &self.config().cluster;
        let node_id = store.node_id();
        let timings = Timings {
            heartbeat: Duration::from_millis(config.heartbeat_ms.max(1)),
            node_timeout: Duration::from_millis(config.node_timeout_ms.max(1)),
            gap_wait: Duration::from_millis(config.gap_wait_ms.max(1)),
        };
        let nats = ConnectOptions::new()
            .name(format!("chathook node {node_id}"))
            .no_echo()
            .connection_timeout(Duration::from_secs(5))
            .connect(config.nats_url.as_str())
            .await
            .map_err(|e| ClusterError::Nats(e.to_string()))?;
        let inbox = nats
            .subscribe(wire::ALL_NODES)
            .await
            .map_err(|e| ClusterError::Nats(e.to_string()))?;
        nats.flush()
            .await
            .map_err(|e| ClusterError::Nats(e.to_string()))?;
        let (outgoing, publish) = mpsc::channel(PUBLISH_QUEUE);
        let cluster = Arc::new(Cluster {
            node_id,
            store: store.clone(),
            outgoing,
        });
        let (local, local_commits) = mpsc::channel(LOCAL_QUEUE);
        let observing = cluster.clone();
        store.observe_commits(Box::new(move |committed: &Committed| {
            let record = observing.record(committed);
            if local.try_send(record.clone()).is_err() {
                tracing::warn!("the relay's queue is full: a commit will be read back");
            }
            let _ = observing.outgoing.try_send(Wire::Commit(record));
        }));
        // Subscribed first, then read: every commit after this head arrives or is read back.
        let (head, conns) = store.cluster_presence().await?;
        self.presence()
            .remote()
            .reset(conns.into_iter().map(|(node, c)| {
                (
                    c.uid,
                    crate::presence::RemoteConn {
                        node_id: node,
                        conn_id: c.conn_id,
                        device_flag: c.device_flag,
                        device_level: c.device_level,
                    },
                )
            }));
        store.heartbeat().await?;
        if self.inner.cluster.set(cluster).is_err() {
            return Err(ClusterError::AlreadyJoined);
        }
        tokio::spawn(publish_loop(nats, wire::subject(node_id), publish));
        tokio::spawn(
            relay::Relay::new(self.clone(), node_id, head + 1, timings.gap_wait).run(
                local_commits,
                inbox,
                self.shutdown_signal(),
            ),
        );
        tokio::spawn(liveness::run(
            self.clone(),
            store,
            timings,
            self.shutdown_signal(),
        ));
        tracing::info!(
            node_id,
            other_connections = self.presence().remote().len(),
            "joined the cluster"
        );
        Ok(())
    }

    /// This node's part in the cluster, when it is in one.
    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.inner.cluster.get()
    }

    /// Asks the other nodes of the cluster (if any) to do `order`.
    pub(crate) fn tell_other_nodes(&self, order: Order) {
        if let Some(cluster) = self.cluster() {
            cluster.tell(order);
        }
    }
}

/// Publishes what the node sends, in the order it was queued.
async fn publish_loop(nats: async_nats::Client, subject: String, mut queue: mpsc::Receiver<Wire>) {
    while let Some(wire) = queue.recv().await {
        let limit = nats.server_info().max_payload;
        for body in encode_within(&wire, limit) {
            if let Err(e) = nats.publish(subject.clone(), body.into()).await {
                tracing::warn!(error = %e, "cannot publish to NATS; other nodes read the database");
            }
        }
    }
}

/// `wire` as JSON bodies of at most `limit` bytes: a commit too large for one is split into commits
/// of consecutive positions (a single event beyond the limit is left to the database).
pub(crate) fn encode_within(wire: &Wire, limit: usize) -> Vec<Vec<u8>> {
    let body = match serde_json::to_vec(wire) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a message for other nodes");
            return Vec::new();
        }
    };
    if body.len() <= limit {
        return vec![body];
    }
    let Wire::Commit(record) = wire else {
        tracing::warn!(size = body.len(), "an order too large for NATS is dropped");
        return Vec::new();
    };
    if record.events.len() < 2 {
        tracing::warn!(
            size = body.len(),
            "an event too large for NATS: other nodes read it from the database"
        );
        return Vec::new();
    }
    let half = record.events.len() / 2;
    let part = |first: u64, events: &[Event]| {
        let routes = record
            .routes
            .iter()
            .filter(|r| {
                events
                    .iter()
                    .any(|e| matches!(e, Event::MessageSent(m) if m.message_id == r.message_id))
            })
            .cloned()
            .collect();
        Wire::Commit(Arc::new(CommitRecord {
            node: record.node,
            first,
            events: events.to_vec().into(),
            routes,
        }))
    };
    let (front, back) = record.events.split_at(half);
    let mut bodies = encode_within(&part(record.first, front), limit);
    bodies.extend(encode_within(
        &part(record.first + half as u64, back),
        limit,
    ));
    bodies
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathook_events::{Message, MessageHeader};

    fn sent(id: i64) -> Event {
        Event::MessageSent(Message {
            message_id: id,
            client_msg_no: String::new(),
            message_seq: id as u64,
            from_uid: "a".into(),
            channel_id: "b".into(),
            channel_type: 1,
            header: MessageHeader::default(),
            setting: 0,
            expire: 0,
            timestamp: 0,
            payload: vec![7; 300],
            sender: Default::default(),
        })
    }

    #[test]
    fn a_commit_too_large_for_nats_goes_as_consecutive_parts_with_their_routes() {
        let record = CommitRecord {
            node: 1,
            first: 10,
            events: (1..=8).map(sent).collect::<Vec<_>>().into(),
            routes: (1..=8)
                .map(|id| Route {
                    message_id: id,
                    origin: crate::Origin::Backend,
                    listed: None,
                })
                .collect(),
        };
        let bodies = encode_within(&Wire::Commit(Arc::new(record)), 1_200);
        let parts: Vec<Arc<CommitRecord>> = bodies
            .iter()
            .map(|b| {
                assert!(b.len() <= 1_200, "{}", b.len());
                match serde_json::from_slice(b).unwrap() {
                    Wire::Commit(r) => r,
                    Wire::Order(o) => panic!("{o:?}"),
                }
            })
            .collect();
        assert!(parts.len() > 1);
        let mut next = 10;
        for p in &parts {
            assert_eq!(p.first, next, "consecutive");
            next = p.end();
            for e in p.events.iter() {
                let Event::MessageSent(m) = e else { panic!() };
                assert!(p.route(m.message_id).is_some(), "its route goes with it");
            }
        }
        assert_eq!(next, 18);
        // one event beyond the limit is left to the database
        let single = CommitRecord {
            events: vec![sent(1)].into(),
            routes: Vec::new(),
            ..parts[0].as_ref().clone()
        };
        assert!(encode_within(&Wire::Commit(Arc::new(single)), 10).is_empty());
    }
}
