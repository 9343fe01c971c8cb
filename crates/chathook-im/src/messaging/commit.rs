//! The commit hand-off: what a send leaves with the store for the moment its message is committed.
//!
//! Its contract: [`CommitHandOff::run`] runs on the store's writer thread, inside the transaction,
//! once the message has its id and seq and before the commit is known to succeed. So it does no I/O,
//! never blocks, holds no lock across it, and has two jobs only: report the seq ([`SeqReport`]: the
//! channel's next send may take its turn, and the sequencer expects the seq) and build the message's
//! events (stored in the same commit). What else goes with the commit (a cluster node's route for its
//! relay) is data on the message itself (`NewMessage::note`), not a duty of the hand-off. A commit
//! that then fails is undone by the append stage (`append`), which abandons the reported seq.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chathook_events::{ClientInfo, Event, Message, OfflineMessage};
use tokio::sync::oneshot;

use super::Ordered;

/// Who learns a message's seq at its commit.
pub(super) struct SeqReport {
    /// Dropped once the message has its seq: the channel's next send may go to the store.
    pub next_turn: Option<oneshot::Sender<()>>,
    /// Alone, for a message with a seq: the sequencer to announce it to, and where the seq is kept
    /// for the append stage (to abandon it if the commit fails).
    pub order: Option<Ordered>,
}

impl SeqReport {
    fn report(self, seq: u64) {
        drop(self.next_turn);
        // In seq order (the writer's): the sequencer expects this seq.
        if let Some(order) = &self.order {
            order.im.sequencer().expect(&order.channel, seq);
            order.seq.store(seq, Ordering::Release);
        }
    }
}

/// What the writer does with a message at its commit (see the module's contract).
pub(super) struct CommitHandOff {
    pub report: SeqReport,
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
        self.report.report(m.message_seq);
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
