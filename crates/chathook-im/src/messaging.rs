//! Sending a message: check the channel (a client's send also its sender: ban, blacklist, membership,
//! whitelist; a backend's only bans and disbands), find the recipients and the offline ones, persist the
//! message with its events in one commit (a CMD message, `sync_once`, goes to each recipient's CMD queue
//! instead of channel history), then fan it out to every online connection of every recipient.
//!
//! Fan-out never blocks: each connection has a bounded queue, and a connection whose queue is full is
//! disconnected as a slow consumer (its messages stay in history for sync). Fan-outs of a channel run
//! in seq order (`ordering`), so every connection receives the channel's messages in seq order. In a
//! cluster, the relay fans out every node's messages in log order instead (`cluster`): the send only
//! notes how its message is delivered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use chathook_events::{
    ChannelType, ClientInfo, Event, Message, MessageHeader, OfflineMessage, Outgoing, Verdict,
};
use chathook_store::{person_channel_key, AppendOutcome, NewMessage};
use tokio::sync::mpsc::error::TrySendError;

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

/// A client's send to a group: not blacklisted (4), a subscriber (3), and on the whitelist when the group
/// has one (13).
fn check_group_sender(channel: &CachedChannel, from_uid: &str) -> Result<(), SendError> {
    if channel.is_blacklisted(from_uid) {
        return Err(SendError::Blacklisted);
    }
    if !channel.is_member(from_uid) {
        return Err(SendError::NotMember);
    }
    if channel.has_whitelist() && !channel.is_whitelisted(from_uid) {
        return Err(SendError::NotWhitelisted);
    }
    Ok(())
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

    async fn send_inner(&self, mut req: SendRequest) -> Result<SendAck, SendError> {
        let limits = &self.config().limits;
        for (field, value, limit) in [
            (
                "client_msg_no",
                &req.client_msg_no,
                limits.max_client_msg_no_bytes,
            ),
            ("channel_id", &req.channel_id, MAX_CHANNEL_ID_BYTES),
        ] {
            if value.len() > limit {
                let size = value.len();
                return Err(SendError::TooLong { field, size, limit });
            }
        }
        let limit = limits.max_payload_bytes;
        if req.payload.is_empty() {
            return Err(SendError::EmptyPayload);
        }
        if req.payload.len() > limit {
            return Err(SendError::PayloadTooLarge {
                size: req.payload.len(),
                limit,
            });
        }
        let to_subscribers = req.channel_id.is_empty();
        // A send to listed `subscribers` goes through a person channel whatever type it names (Go
        // backends send WuKongIM's zero value, 0, and WuKongIM ignores it there).
        let channel_type = match to_subscribers {
            true => ChannelType::Person,
            false => ChannelType::from_u8(req.channel_type)
                .ok_or(SendError::UnsupportedChannelType(req.channel_type))?,
        };
        // The backend (and a system uid) speaks for the sender: WuKongIM checks only bans and disbands.
        let from_client =
            matches!(req.origin, Origin::Connection(_)) && !self.is_system_uid(&req.from_uid);
        if from_client {
            self.check_sender_not_banned(&req.from_uid).await?;
        }
        let (channel_key, recipients) = if to_subscribers {
            // A CMD message to listed users (REST `subscribers`): each sees it from the sender.
            let uids = req.subscribers.take().ok_or(SendError::EmptyChannelId)?;
            req.channel_id = req.from_uid.clone();
            req.channel_type = ChannelType::Person.as_u8();
            (String::new(), Recipients::Listed(uids))
        } else {
            match channel_type {
                ChannelType::Person => {
                    if from_client {
                        self.check_person_lists(&req.from_uid, &req.channel_id)
                            .await?;
                    }
                    let mut r = vec![req.channel_id.clone()];
                    if !req.from_uid.is_empty() && req.from_uid != req.channel_id {
                        r.push(req.from_uid.clone());
                    }
                    (
                        person_channel_key(&req.from_uid, &req.channel_id),
                        Recipients::Listed(r),
                    )
                }
                ChannelType::Group => {
                    let channel = self
                        .channels()
                        .get(self.store(), &req.channel_id, req.channel_type)
                        .await?;
                    let recipients = match channel {
                        // WuKongIM stores a backend's send to a group it does not know.
                        None if !from_client => Recipients::Listed(Vec::new()),
                        None => return Err(SendError::ChannelNotFound),
                        Some(channel) => {
                            if channel.record.flags.disband {
                                return Err(SendError::Disbanded);
                            }
                            if channel.record.flags.ban {
                                return Err(SendError::Banned);
                            }
                            if from_client {
                                check_group_sender(&channel, &req.from_uid)?;
                            }
                            Recipients::Group(channel)
                        }
                    };
                    (req.channel_id.clone(), recipients)
                }
            }
        };
        // A before-send hook judges the message (not a backend's CMD to listed users). While one judges
        // the channel type, every send of a channel takes a turn, so that seqs follow send order.
        let hook = self
            .before_send()
            .filter(|h| !to_subscribers && h.judges(req.channel_type));
        let mut turn = hook
            .as_ref()
            .map(|_| self.turns().take((req.channel_type, channel_key.clone())));
        if let Some(hook) = hook.filter(|_| !req.skip_before_send) {
            let outgoing = Outgoing {
                from_uid: req.from_uid.clone(),
                channel_id: req.channel_id.clone(),
                channel_type: req.channel_type,
                client_msg_no: req.client_msg_no.clone(),
                header: req.header,
                payload: std::mem::take(&mut req.payload),
                timestamp: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64),
                sender: req.client.clone(),
            };
            match hook.judge(&outgoing).await {
                Verdict::Allow { payload } => req.payload = payload.unwrap_or(outgoing.payload),
                Verdict::Reject { code, info } => {
                    return Err(SendError::RejectedByHook { code, info })
                }
                Verdict::Drop => {
                    // Acknowledged as sent, with an id of its own; nobody receives it.
                    let message_id = self.store().reserve_message_id().await?;
                    return Ok(SendAck {
                        message_id,
                        message_seq: 0,
                        client_msg_no: req.client_msg_no,
                    });
                }
            }
        }
        if let Some(turn) = &mut turn {
            turn.wait().await;
        }
        // Dropped on the writer thread once this message has its seq: the channel's next send goes.
        let next_turn = turn.as_mut().and_then(|t| t.release_handle());
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
        let client = req.client;
        let client_msg_no = req.client_msg_no;
        let source_id = u64::from(self.config().node_id);
        // In a cluster, the relay delivers the message once it is committed, in log order.
        let cluster = self.cluster().cloned();
        let cluster_route = cluster.clone().map(|c| {
            let listed = match &recipients {
                Recipients::Listed(uids) if to_subscribers => Some(uids.clone()),
                _ => None,
            };
            (c, req.origin, listed)
        });
        // The id the route was noted under, to forget it when the append fails.
        let routed: Option<Arc<OnceLock<i64>>> = cluster.as_ref().map(|_| Arc::default());
        let routed_id = routed.clone();
        // Messages with a seq (stored in channel history) reach connections in seq order.
        let ordered = !req.header.no_persist && !req.header.sync_once && cluster.is_none();
        let order = ordered.then(|| Ordered {
            channel: (req.channel_type, channel_key.clone()),
            seq: Arc::new(AtomicU64::new(0)),
            im: self.clone(),
        });
        let announce = order.clone();
        let message = NewMessage {
            channel_key,
            channel_id: req.channel_id,
            channel_type: req.channel_type,
            client_msg_no,
            from_uid: req.from_uid,
            header: req.header,
            setting: req.setting,
            expire: req.expire,
            payload: req.payload,
            cmd_recipients,
        };
        let outcome = self
            .store()
            .append_message(
                message,
                self.config().messages.dedup_window_secs,
                Box::new(move |m: &Message| {
                    drop(next_turn);
                    if let (Some((cluster, origin, listed)), Some(routed)) =
                        (cluster_route, routed_id)
                    {
                        cluster.route(crate::cluster::wire::Route {
                            message_id: m.message_id,
                            origin,
                            listed,
                        });
                        let _ = routed.set(m.message_id);
                    }
                    // On the writer thread, in seq order: announce the seq to the sequencer.
                    if let Some(order) = &announce {
                        order.im.sequencer().expect(&order.channel, m.message_seq);
                        order.seq.store(m.message_seq, Ordering::Release);
                    }
                    let sent = Message {
                        sender: client,
                        ..m.clone()
                    };
                    let mut events = Vec::with_capacity(1 + offline_parts.len());
                    for to_uids in offline_parts {
                        events.push(Event::MessageOffline(OfflineMessage {
                            message: sent.clone(),
                            to_uids,
                            source_id,
                        }));
                    }
                    events.insert(0, Event::MessageSent(sent));
                    events
                }),
            )
            .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                if let (Some(cluster), Some(id)) = (&cluster, routed.as_ref().and_then(|r| r.get()))
                {
                    cluster.forget(*id);
                }
                if let Some(order) = &order {
                    let seq = order.seq.load(Ordering::Acquire);
                    if seq != 0 {
                        let released = self.sequencer().abandon(&order.channel, seq);
                        self.fan_out_all(&order.channel, released);
                    }
                }
                return Err(e.into());
            }
        };
        match outcome {
            AppendOutcome::Duplicate {
                message_id,
                message_seq,
                client_msg_no,
            } => Ok(SendAck {
                message_id,
                message_seq,
                client_msg_no,
            }),
            AppendOutcome::Stored(message) => {
                let counters = self.message_counters();
                match channel_type {
                    ChannelType::Person => counters.person.inc(),
                    ChannelType::Group => counters.group.inc(),
                };
                counters.sent_events.inc();
                counters.offline_events.inc_by(offline_events);
                let ack = SendAck {
                    message_id: message.message_id,
                    message_seq: message.message_seq,
                    client_msg_no: message.client_msg_no.clone(),
                };
                if cluster.is_some() {
                    // The relay delivers it, in log order.
                    return Ok(ack);
                }
                let seq = message.message_seq;
                let fanout = Fanout {
                    message: Arc::new(message),
                    recipients,
                    origin: req.origin,
                };
                match &order {
                    Some(order) => {
                        let released = self.sequencer().finish(&order.channel, seq, fanout);
                        self.fan_out_all(&order.channel, released);
                    }
                    None => fanout.run(self),
                }
                Ok(ack)
            }
        }
    }

    /// A sender whose own person channel is banned may not send (reason 19).
    async fn check_sender_not_banned(&self, from_uid: &str) -> Result<(), SendError> {
        if self.is_banned(from_uid).await? {
            return Err(SendError::Banned);
        }
        Ok(())
    }

    /// The recipient's person channel lists: a blacklisted sender is refused (4); with
    /// `messages.person_whitelist`, so is a sender not on the recipient's whitelist (13).
    async fn check_person_lists(&self, from_uid: &str, to_uid: &str) -> Result<(), SendError> {
        let theirs = self
            .channels()
            .get(self.store(), to_uid, ChannelType::Person.as_u8())
            .await?;
        if theirs.as_ref().is_some_and(|c| c.is_blacklisted(from_uid)) {
            return Err(SendError::Blacklisted);
        }
        if self.config().messages.person_whitelist
            && !theirs.as_ref().is_some_and(|c| c.is_whitelisted(from_uid))
        {
            return Err(SendError::NotWhitelisted);
        }
        Ok(())
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
