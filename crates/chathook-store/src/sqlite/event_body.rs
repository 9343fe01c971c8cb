//! How an event is stored in the `events` table. A message event whose message is in channel history
//! refers to it (channel key, type, seq) instead of repeating it, payload and all: the writer thread,
//! which every durable message passes through, serialises a few dozen bytes instead of the message in
//! base64, and the message is read back from history when the event is read. Every other event
//! (messages that are not stored: `no_persist`, CMD) is stored as its JSON.

use std::sync::Arc;

use chathook_events::{ClientInfo, Event, Message, OfflineMessage};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::messages::message_from_row;
use crate::{person_channel_key, StoreError};

/// A stored message: where it lies in channel history.
#[derive(Debug, Serialize, Deserialize)]
struct MessageRef {
    /// Channel key.
    k: String,
    /// Channel type.
    t: u8,
    /// Seq.
    s: u64,
}

/// A message event as stored. `ref` comes first so that a stored body is told apart by its start.
#[derive(Debug, Serialize, Deserialize)]
struct RefBody {
    #[serde(rename = "ref")]
    message: MessageRef,
    /// `sent`, or `offline` with the offline event's own fields.
    kind: RefKind,
    /// The sender's client (history does not keep it).
    #[serde(
        rename = "c",
        default,
        skip_serializing_if = "ClientInfo::is_unknown_shared"
    )]
    sender: Arc<ClientInfo>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RefKind {
    Sent,
    Offline {
        to_uids: Vec<String>,
        source_id: u64,
    },
}

const REF_PREFIX: &str = "{\"ref\":";

fn message_ref(m: &Message) -> Option<MessageRef> {
    // seq 0: not in channel history (no_persist, CMD), so it cannot be referred to
    if m.message_seq == 0 {
        return None;
    }
    let k = if m.channel_type == 1 {
        person_channel_key(&m.from_uid, &m.channel_id)
    } else {
        m.channel_id.clone()
    };
    Some(MessageRef {
        k,
        t: m.channel_type,
        s: m.message_seq,
    })
}

/// The stored body of `event`.
pub(super) fn encode(event: &Event) -> Result<String, StoreError> {
    let by_ref = match event {
        Event::MessageSent(m) => message_ref(m).map(|message| RefBody {
            message,
            kind: RefKind::Sent,
            sender: m.sender.clone(),
        }),
        Event::MessageOffline(o) => message_ref(&o.message).map(|message| RefBody {
            message,
            kind: RefKind::Offline {
                to_uids: o.to_uids.clone(),
                source_id: o.source_id,
            },
            sender: o.message.sender.clone(),
        }),
        _ => None,
    };
    let text = match by_ref {
        Some(body) => serde_json::to_string(&body),
        None => serde_json::to_string(event),
    };
    text.map_err(|e| StoreError::Storage(format!("event not serializable: {e}")))
}

/// The event a stored body holds, reading a referred message from channel history.
pub(super) fn decode(conn: &Connection, body: &str) -> Result<Event, String> {
    if !body.starts_with(REF_PREFIX) {
        return serde_json::from_str(body).map_err(|e| e.to_string());
    }
    let stored: RefBody = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let r = &stored.message;
    let mut message = conn
        .prepare_cached(
            "SELECT message_seq, message_id, client_msg_no, from_uid, channel_id, channel_type, header,
             setting, expire, timestamp, payload FROM messages
             WHERE channel_key = ?1 AND channel_type = ?2 AND message_seq = ?3",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![r.k, r.t, r.s as i64], message_from_row)
                .optional()
        })
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the message it refers to ({} {} {}) is gone", r.k, r.t, r.s))?;
    message.sender = stored.sender;
    Ok(match stored.kind {
        RefKind::Sent => Event::MessageSent(message),
        RefKind::Offline { to_uids, source_id } => Event::MessageOffline(OfflineMessage {
            message,
            to_uids,
            source_id,
        }),
    })
}
