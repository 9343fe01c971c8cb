//! The send's third stage, append: the message and its events in one durable commit (through the
//! [`CommitHandOff`]), de-duplicated by `client_msg_no`; in a cluster the message's route goes with
//! the commit to the relay (`NewMessage::note`). A failed commit is undone: its seq is abandoned so
//! that the channel's later messages are not held back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chathook_events::{ChannelType, Message};
use chathook_store::{AppendOutcome, NewMessage};

use super::commit::{CommitHandOff, SeqReport};
use super::judge::Judged;
use super::{split_uids, Ordered, Origin, Recipients, SendAck};
use crate::cluster::RouteNote;
use crate::error::SendError;
use crate::Im;

/// How this node delivers a stored message, fixed when the node joined a cluster (before it serves)
/// or not: alone, through its sequencer and fan-out; in a cluster, through the relay (every node's
/// messages, in log order). Read once per send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strategy {
    Local,
    Cluster,
}

/// A stored message and what its delivery needs.
pub(super) struct Appended {
    pub message: Message,
    pub recipients: Recipients,
    pub origin: Origin,
    pub channel_type: ChannelType,
    /// Its `message.offline` events.
    pub offline_events: u64,
    /// Alone, for a message with a seq: its place in the channel's delivery order.
    pub order: Option<Ordered>,
}

/// Where the append left a send.
// Moved once per send and never kept: boxing the large variant would add an allocation per message.
#[allow(clippy::large_enum_variant)]
pub(super) enum AppendResult {
    Stored(Appended),
    /// The sender's `client_msg_no` was taken within the window: the first message's ack.
    Duplicate(SendAck),
}

impl Im {
    /// The node's delivery strategy.
    pub(super) fn strategy(&self) -> Strategy {
        match self.cluster() {
            Some(_) => Strategy::Cluster,
            None => Strategy::Local,
        }
    }

    /// Appends a judged send; `strategy` decides whether the relay or this node delivers it.
    pub(super) async fn append(
        &self,
        judged: Judged<'_>,
        strategy: Strategy,
    ) -> Result<AppendResult, SendError> {
        let Judged { admitted, mut turn } = judged;
        let req = admitted.req;
        let recipients = admitted.recipients;
        // Offline = no primary connection: WuKongIM pushes to a user whose phone is not connected.
        let offline: Vec<String> = recipients
            .uids()
            .iter()
            .filter(|u| **u != req.from_uid && !self.presence().has_primary(u))
            .cloned()
            .collect();
        let cmd_recipients = if req.header.sync_once && !req.header.no_persist {
            let uids = recipients.uids().iter();
            uids.filter(|u| **u != req.from_uid).cloned().collect()
        } else {
            Vec::new()
        };
        let offline_parts = split_uids(offline, self.config().limits.offline_uids_bytes);
        let offline_events = offline_parts.len() as u64;
        let note = match strategy {
            Strategy::Cluster => Some(RouteNote::note(
                req.origin,
                match &recipients {
                    Recipients::Listed(uids) if admitted.to_subscribers => Some(uids.clone()),
                    _ => None,
                },
            )),
            Strategy::Local => None,
        };
        // Alone, messages with a seq (stored in channel history) reach connections in seq order.
        let ordered =
            !req.header.no_persist && !req.header.sync_once && strategy == Strategy::Local;
        let order = ordered.then(|| Ordered {
            channel: (req.channel_type, admitted.channel_key.clone()),
            seq: Arc::new(AtomicU64::new(0)),
            im: self.clone(),
        });
        let hand_off = CommitHandOff {
            report: SeqReport {
                // Dropped on the writer thread once this message has its seq: the channel's next send goes.
                next_turn: turn.as_mut().and_then(|t| t.release_handle()),
                order: order.clone(),
            },
            client: req.client,
            offline_parts,
            source_id: u64::from(self.config().node_id),
        };
        let message = NewMessage {
            channel_key: admitted.channel_key,
            channel_id: req.channel_id,
            channel_type: req.channel_type,
            client_msg_no: req.client_msg_no,
            from_uid: req.from_uid,
            header: req.header,
            setting: req.setting,
            expire: req.expire,
            payload: req.payload,
            cmd_recipients,
            note,
        };
        let outcome = self
            .store()
            .append_message(
                message,
                self.config().messages.dedup_window_secs,
                Box::new(move |m: &Message| hand_off.run(m)),
            )
            .await;
        // The turn is held until the store answered: the channel's next send waits on it meanwhile.
        drop(turn);
        match outcome {
            Err(e) => {
                self.abandon(&order);
                Err(e.into())
            }
            Ok(AppendOutcome::Duplicate {
                message_id,
                message_seq,
                client_msg_no,
            }) => Ok(AppendResult::Duplicate(SendAck {
                message_id,
                message_seq,
                client_msg_no,
            })),
            Ok(AppendOutcome::Stored(message)) => Ok(AppendResult::Stored(Appended {
                message,
                recipients,
                origin: req.origin,
                channel_type: admitted.channel_type,
                offline_events,
                order,
            })),
        }
    }

    /// After a failed commit: a seq reported for it is abandoned (the channel's later messages are
    /// delivered without it).
    fn abandon(&self, order: &Option<Ordered>) {
        if let Some(order) = order {
            let seq = order.seq.load(Ordering::Acquire);
            if seq != 0 {
                let released = self.sequencer().abandon(&order.channel, seq);
                self.fan_out_all(&order.channel, released);
            }
        }
    }
}
