//! Sending a message, in stages (one file each): `admit` checks the channel (a client's send also its
//! sender: ban, blacklist, membership, whitelist; a backend's only bans and disbands) and finds the
//! recipients; `judge` runs the before-send hook in the channel's turn; `append` persists the message
//! with its events in one commit (a CMD message, `sync_once`, goes to each recipient's CMD queue instead
//! of channel history; `commit` is what the store's writer runs at the commit); `deliver` fans it out
//! to every online connection of every recipient.
//!
//! Fan-out never blocks: each connection has a bounded queue, and a connection whose queue is full is
//! disconnected as a slow consumer (its messages stay in history for sync). Fan-outs of a channel run
//! in seq order (`ordering`), so every connection receives the channel's messages in seq order. In a
//! cluster, the relay fans out every node's messages in log order instead (`cluster`): the message
//! carries its route with its commit (`NewMessage::note`).

mod admit;
mod append;
mod commit;
mod deliver;
mod judge;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use chathook_events::{ClientInfo, Message, MessageHeader};
use tokio::sync::mpsc::error::TrySendError;

use append::AppendResult;
use judge::Judgement;

use crate::channels::CachedChannel;
use crate::error::{reason, SendError};
use crate::ordering::{ChannelKey, Released};
use crate::presence::{Delivery, Kick, Outbound};
use crate::Im;

/// Where a send comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A client connection: the message is not echoed to it.
    Connection(u64),
    /// A backend through the REST API: the message is not echoed to the sender's connections (the
    /// sender's client did not send it; the acceptance checks pin this).
    Backend,
}

/// `uids` in consecutive parts of at most `budget` bytes as a JSON array holds them (each uid with its
/// quotes and comma), each part one `message.offline` event, so that no webhook body carrying one
/// passes `webhook.max_body_bytes`; a uid larger than the budget goes alone. No part when `uids` is empty.
fn split_uids(uids: Vec<String>, budget: usize) -> Vec<Vec<String>> {
    let mut parts: Vec<Vec<String>> = Vec::new();
    let mut bytes = 0;
    for uid in uids {
        let weight = uid.len() + 3;
        match parts.last_mut() {
            Some(part) if bytes + weight <= budget => part.push(uid),
            _ => {
                bytes = 0;
                parts.push(vec![uid]);
            }
        }
        bytes += weight;
    }
    parts
}

/// The longest channel id a message may name: a uid's (person channels) or a group id's limit.
pub const MAX_CHANNEL_ID_BYTES: usize = 128;

/// A message to send.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub from_uid: String,
    pub channel_id: String,
    pub channel_type: u8,
    /// Empty: the server makes one (and no de-duplication applies).
    pub client_msg_no: String,
    pub header: MessageHeader,
    pub setting: u8,
    pub expire: u32,
    pub payload: Vec<u8>,
    /// With an empty `channel_id`: the users a CMD message goes to (REST `subscribers`).
    pub subscribers: Option<Vec<String>>,
    pub origin: Origin,
    /// The sender's client (address and platform), carried by the message's events.
    pub client: Arc<ClientInfo>,
    /// A backend's send that does not pass the before-send hook (REST `skip_before_send`).
    pub skip_before_send: bool,
}

/// Who receives a message: a group's subscribers (shared with the cache, not copied) or a list.
enum Recipients {
    Group(Arc<CachedChannel>),
    Listed(Vec<String>),
}

impl Recipients {
    fn uids(&self) -> &[String] {
        match self {
            Recipients::Group(channel) => &channel.record.subscribers,
            Recipients::Listed(uids) => uids,
        }
    }
}

/// A stored message's delivery to its recipients' connections, run when the sequencer releases it.
pub(crate) struct Fanout {
    message: Arc<Message>,
    recipients: Recipients,
    origin: Origin,
}

impl Fanout {
    fn run(self, im: &Im) {
        im.fan_out(self.message, self.recipients.uids(), self.origin);
    }
}

/// A send whose fan-out waits its turn: the channel, the seq the writer gave it (0 until then).
#[derive(Clone)]
struct Ordered {
    channel: ChannelKey,
    seq: Arc<AtomicU64>,
    im: Im,
}

/// What the sender is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendAck {
    pub message_id: i64,
    pub message_seq: u64,
    pub client_msg_no: String,
}

impl Im {
    /// Sends a message; the ack comes after the message and its events are durable.
    pub async fn send(&self, req: SendRequest) -> Result<SendAck, SendError> {
        let result = self.send_inner(req).await;
        if let Err(e) = &result {
            self.metrics()
                .sends_refused
                .get_or_create(&vec![("reason".to_string(), e.code().to_string())])
                .inc();
        }
        result
    }

    /// The send's stages, each in its own file: `admit` (limits, channel, sender, recipients) ->
    /// `judge` (the channel's turn and the before-send hook) -> `append` (one durable commit, with the
    /// `commit` hand-off the writer runs) -> `deliver` (counters and fan-out). The gateway's sends and
    /// REST's go through the same stages.
    async fn send_inner(&self, req: SendRequest) -> Result<SendAck, SendError> {
        let admitted = self.admit(req).await?;
        let judged = match self.judge(admitted).await? {
            Judgement::Send(judged) => judged,
            Judgement::Dropped(ack) => return Ok(ack),
        };
        let strategy = self.strategy();
        match self.append(judged, strategy).await? {
            AppendResult::Stored(appended) => Ok(self.deliver(appended, strategy)),
            AppendResult::Duplicate(ack) => Ok(ack),
        }
    }

    /// Runs the fan-outs the sequencer released to this task, in their order, and then those released
    /// to it meanwhile, until the sequencer has none left for `channel`.
    fn fan_out_all(&self, channel: &ChannelKey, mut released: Released<Fanout>) {
        while !released.is_empty() {
            for fanout in released {
                fanout.run(self);
            }
            released = self.sequencer().delivered(channel);
        }
    }

    /// Queues the message to every connection of every recipient, except the one it came from.
    pub(crate) fn fan_out(&self, message: Arc<Message>, recipients: &[String], origin: Origin) {
        let skip = match origin {
            Origin::Connection(id) => Some(id),
            Origin::Backend => None,
        };
        let skip_sender = origin == Origin::Backend;
        // A person channel is seen under two names: the sender's uid by the peer, the peer's by the sender.
        let mut deliveries: Vec<Arc<Delivery>> = Vec::with_capacity(2);
        let mut delivery_for = |viewer: &str| -> Arc<Delivery> {
            let channel_id = message.channel_id_for(viewer);
            if let Some(d) = deliveries.iter().find(|d| d.channel_id == channel_id) {
                return d.clone();
            }
            let d = Arc::new(Delivery {
                message: message.clone(),
                channel_id: channel_id.to_string(),
                frame: OnceLock::new(),
            });
            deliveries.push(d.clone());
            d
        };
        let mut delivered = 0u64;
        let budget = self.config().limits.outbound_queue_bytes;
        let slow = |conn: &crate::presence::ConnHandle, what: &str| {
            self.metrics().slow_consumer_disconnects.inc();
            conn.kick(Kick {
                reason_code: reason::SYSTEM_ERROR,
                reason: format!("slow consumer: {what}"),
                presence_reason: chathook_events::PresenceReason::ProtocolError,
                notify: true,
                device: None,
            });
        };
        for uid in recipients {
            if skip_sender && *uid == message.from_uid {
                continue;
            }
            let delivery = delivery_for(uid);
            let cost = delivery.cost();
            self.presence().for_each(uid, |conn| {
                if Some(conn.conn_id) == skip {
                    return;
                }
                if !conn.reserve(cost, budget) {
                    return slow(
                        conn,
                        "its unacknowledged recvs pass limits.outbound_queue_bytes",
                    );
                }
                match conn.outbound.try_send(Outbound::Recv(delivery.clone())) {
                    Ok(()) => delivered += 1,
                    Err(TrySendError::Full(_)) => {
                        conn.release(cost);
                        slow(conn, "the outbound queue is full")
                    }
                    Err(TrySendError::Closed(_)) => conn.release(cost),
                }
            });
        }
        self.metrics().messages_delivered.inc_by(delivered);
    }
}

#[cfg(test)]
mod tests {
    use super::split_uids;

    fn uids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("u{i:03}")).collect()
    }

    #[test]
    fn offline_recipients_are_spread_over_parts_within_the_budget_in_order() {
        // Each uid weighs 4 + 3 bytes: three fit in 21.
        let parts = split_uids(uids(8), 21);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2]);
        assert_eq!(parts.concat(), uids(8));
        for part in &parts {
            let json = serde_json::to_string(part).unwrap();
            assert!(json.len() <= 21 + 1, "{json}");
        }
    }

    #[test]
    fn no_recipients_make_no_part_and_an_oversized_uid_goes_alone() {
        assert!(split_uids(Vec::new(), 100).is_empty());
        let parts = split_uids(vec!["a".repeat(50), "b".into(), "c".into()], 10);
        assert_eq!(parts, [vec!["a".repeat(50)], vec!["b".into(), "c".into()]]);
    }
}
