//! The commit hand-off: what a send leaves with the store for the moment its message is committed.
//!
//! Its contract: [`CommitHandOff::run`] runs on the store's writer thread, inside the transaction,
//! once the message has its id and seq and before the commit is known to succeed. So it does no I/O,
//! never blocks, holds no lock across it, and only notes and builds: it lets the channel's next send
//! take its turn, notes the message's route for the cluster relay, tells the sequencer to expect the
//! seq, and builds the message's events (stored in the same commit). A commit that then fails is
//! undone by the append stage (`append`), which forgets the route and abandons the seq.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use chathook_events::{ClientInfo, Event, Message, OfflineMessage};
use tokio::sync::oneshot;

use super::{Ordered, Origin};
use crate::cluster::Cluster;

/// Where the cluster relay delivers a message, noted under its id at commit.
pub(super) struct RouteNote {
    pub cluster: Arc<Cluster>,
    pub origin: Origin,
    /// A CMD message to listed users: its recipients.
    pub listed: Option<Vec<String>>,
    /// The id the route was noted under, read back to forget it if the commit fails.
    pub routed: Arc<OnceLock<i64>>,
}

/// What the writer does with a message at its commit (see the module's contract).
pub(super) struct CommitHandOff {
    /// Dropped once the message has its seq: the channel's next send may go to the store.
    pub next_turn: Option<oneshot::Sender<()>>,
    /// In a cluster: the relay's route for the message.
    pub route: Option<RouteNote>,
    /// Alone, for a message with a seq: the sequencer to announce it to, and where the seq is kept
    /// for the append stage.
    pub announce: Option<Ordered>,
    /// The sender's client, carried by the events.
    pub client: Arc<ClientInfo>,
    /// The recipients without a primary connection, one `message.offline` event per part.
    pub offline_parts: Vec<Vec<String>>,
    /// This node's id (WuKongIM's `source_id`).
    pub source_id: u64,
}

impl CommitHandOff {
    /// Runs at `m`'s commit, on the writer thread; returns the events to store with it.
    pub fn run(self, m: &Message) -> Vec<Event> {
        drop(self.next_turn);
        if let Some(note) = self.route {
            note.cluster.route(crate::cluster::wire::Route {
                message_id: m.message_id,
                origin: note.origin,
                listed: note.listed,
            });
            let _ = note.routed.set(m.message_id);
        }
        // In seq order (the writer's): announce the seq to the sequencer.
        if let Some(order) = &self.announce {
            order.im.sequencer().expect(&order.channel, m.message_seq);
            order.seq.store(m.message_seq, Ordering::Release);
        }
        let sent = Message {
            sender: self.client,
            ..m.clone()
        };
        let mut events = Vec::with_capacity(1 + self.offline_parts.len());
        events.push(Event::MessageSent(sent.clone()));
        for to_uids in self.offline_parts {
            events.push(Event::MessageOffline(OfflineMessage {
                message: sent.clone(),
                to_uids,
                source_id: self.source_id,
            }));
        }
        events
    }
}
