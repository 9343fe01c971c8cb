//! The stored message, as every layer sees it once it has its id and sequence number.

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::ClientInfo;

/// Channel types as WuKongIM numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelType {
    /// A one-to-one conversation (1).
    Person,
    /// A group (2).
    Group,
}

impl ChannelType {
    /// The WuKongIM number of this channel type.
    pub fn as_u8(self) -> u8 {
        match self {
            ChannelType::Person => 1,
            ChannelType::Group => 2,
        }
    }

    /// Parses WuKongIM's number; other values are not channel types chathook serves.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(ChannelType::Person),
            2 => Some(ChannelType::Group),
            _ => None,
        }
    }
}

/// WuKongIM's message header flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageHeader {
    /// Delivered to online recipients but never stored.
    pub no_persist: bool,
    /// The client should show an unread marker.
    pub red_dot: bool,
    /// A command message that each device syncs only once; it is not part of channel history.
    pub sync_once: bool,
}

/// A message after it was accepted: it has its global id and its per-channel sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Globally unique, increasing id (snowflake-style).
    pub message_id: i64,
    /// The sender's idempotency key.
    pub client_msg_no: String,
    /// Position in the channel, starting at 1 with no gaps; 0 for messages that are not stored.
    pub message_seq: u64,
    pub from_uid: String,
    /// The channel as the sender addressed it: the group id, or for a person channel the recipient's uid.
    pub channel_id: String,
    /// WuKongIM's channel type number (1 person, 2 group).
    pub channel_type: u8,
    pub header: MessageHeader,
    /// WuKongIM's setting byte, passed through.
    pub setting: u8,
    /// Seconds after `timestamp` at which the message disappears from sync; 0 = never.
    pub expire: u32,
    /// Unix seconds at which the server accepted the message.
    pub timestamp: i64,
    /// The opaque payload bytes.
    #[serde(with = "base64_bytes")]
    pub payload: Vec<u8>,
    /// The sender's client, on message events (not kept in channel history). Shared: a connection's
    /// client is the same for every message it sends.
    #[serde(default, skip_serializing_if = "ClientInfo::is_unknown_shared")]
    pub sender: Arc<ClientInfo>,
}

impl Message {
    /// The channel id that `viewer` sees this message in: for a person channel, the other party.
    pub fn channel_id_for(&self, viewer: &str) -> &str {
        if self.channel_type == ChannelType::Person.as_u8() && viewer == self.channel_id {
            &self.from_uid
        } else {
            &self.channel_id
        }
    }
}

mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(channel_type: u8) -> Message {
        Message {
            message_id: 1,
            client_msg_no: "c".into(),
            message_seq: 1,
            from_uid: "alice".into(),
            channel_id: "bob".into(),
            channel_type,
            header: MessageHeader::default(),
            setting: 0,
            expire: 0,
            timestamp: 1_700_000_000,
            payload: vec![0, 255, 1],
            sender: Default::default(),
        }
    }

    #[test]
    fn person_channel_shows_the_other_party() {
        let m = message(1);
        assert_eq!(m.channel_id_for("bob"), "alice");
        assert_eq!(m.channel_id_for("alice"), "bob");
        let g = message(2);
        assert_eq!(g.channel_id_for("bob"), "bob");
    }

    #[test]
    fn payload_round_trips_as_base64() {
        let m = message(1);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["payload"], "AP8B");
        let back: Message = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }
}
