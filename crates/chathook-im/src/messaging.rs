//! Sending a message: check the channel, find the recipients and the offline ones, persist the message
//! with its events in one commit, then fan it out to every online connection of every recipient.
//!
//! Fan-out never blocks: each connection has a bounded queue, and a connection whose queue is full is
//! disconnected as a slow consumer (its messages stay in history for sync).

use std::sync::{Arc, OnceLock};

use chathook_events::{ChannelType, Event, Message, MessageHeader, OfflineMessage};
use chathook_store::{person_channel_key, AppendOutcome, NewMessage};
use tokio::sync::mpsc::error::TrySendError;

use crate::error::{reason, SendError};
use crate::presence::{Delivery, Kick, Outbound};
use crate::Im;

/// Where a send comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client connection: the message is not echoed to it.
    Connection(u64),
    /// A backend through the REST API: the message is not echoed to the sender's connections (the
    /// sender's client did not send it; the acceptance checks pin this).
    Backend,
}

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
    /// Only these users receive the message (REST `subscribers`).
    pub subscribers: Option<Vec<String>>,
    pub origin: Origin,
}

/// Who receives a message: a group's subscribers (shared with the cache, not copied) or a list.
enum Recipients {
    Group(Arc<crate::channels::CachedChannel>),
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
        let limit = self.config().limits.max_payload_bytes;
        if req.payload.is_empty() {
            return Err(SendError::EmptyPayload);
        }
        if req.payload.len() > limit {
            return Err(SendError::PayloadTooLarge {
                size: req.payload.len(),
                limit,
            });
        }
        if req.channel_id.is_empty() {
            return Err(SendError::EmptyChannelId);
        }
        let channel_type = ChannelType::from_u8(req.channel_type)
            .ok_or(SendError::UnsupportedChannelType(req.channel_type))?;
        let (channel_key, mut recipients) = match channel_type {
            ChannelType::Person => {
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
                    .await?
                    .ok_or(SendError::ChannelNotFound)?;
                if channel.record.flags.disband {
                    return Err(SendError::Disbanded);
                }
                if channel.record.flags.ban {
                    return Err(SendError::Banned);
                }
                // An empty from_uid is the system speaking through the REST API.
                if !req.from_uid.is_empty() {
                    if channel.is_blacklisted(&req.from_uid) {
                        return Err(SendError::Blacklisted);
                    }
                    if !channel.is_member(&req.from_uid) {
                        return Err(SendError::NotMember);
                    }
                }
                (req.channel_id.clone(), Recipients::Group(channel))
            }
        };
        if let Some(only) = req.subscribers.take() {
            recipients = Recipients::Listed(only);
        }
        let offline: Vec<String> = recipients
            .uids()
            .iter()
            .filter(|u| **u != req.from_uid && !self.presence().is_online(u))
            .cloned()
            .collect();
        let has_offline = !offline.is_empty();
        let client_msg_no = req.client_msg_no;
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
        };
        let outcome = self
            .store()
            .append_message(
                message,
                self.config().messages.dedup_window_secs,
                Box::new(move |m: &Message| {
                    let mut events = vec![Event::MessageSent(m.clone())];
                    if has_offline {
                        events.push(Event::MessageOffline(OfflineMessage {
                            message: m.clone(),
                            to_uids: offline,
                        }));
                    }
                    events
                }),
            )
            .await?;
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
                if has_offline {
                    counters.offline_events.inc();
                }
                let ack = SendAck {
                    message_id: message.message_id,
                    message_seq: message.message_seq,
                    client_msg_no: message.client_msg_no.clone(),
                };
                self.fan_out(Arc::new(message), recipients.uids(), req.origin);
                Ok(ack)
            }
        }
    }

    /// Queues the message to every connection of every recipient, except the one it came from.
    fn fan_out(&self, message: Arc<Message>, recipients: &[String], origin: Origin) {
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
        for uid in recipients {
            if skip_sender && *uid == message.from_uid {
                continue;
            }
            let delivery = delivery_for(uid);
            self.presence().for_each(uid, |conn| {
                if Some(conn.conn_id) == skip {
                    return;
                }
                match conn.outbound.try_send(Outbound::Recv(delivery.clone())) {
                    Ok(()) => delivered += 1,
                    Err(TrySendError::Full(_)) => {
                        self.metrics().slow_consumer_disconnects.inc();
                        conn.kick(Kick {
                            reason_code: reason::SYSTEM_ERROR,
                            reason: "slow consumer: the outbound queue is full".into(),
                            presence_reason: chathook_events::PresenceReason::ProtocolError,
                        });
                    }
                    Err(TrySendError::Closed(_)) => {}
                }
            });
        }
        self.metrics().messages_delivered.inc_by(delivered);
    }
}
