//! The before-send hook contract: a message on its way in, before it has an id or a seq, and the
//! verdict a hook gives on it. The IM core asks; something else (the webhook engine, wired by the
//! binary) answers. Neither knows the other.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{ClientInfo, MessageHeader};

/// A message waiting for a before-send verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub from_uid: String,
    /// The group id, or for a person channel the recipient's uid.
    pub channel_id: String,
    /// 1 person, 2 group.
    pub channel_type: u8,
    pub client_msg_no: String,
    pub header: MessageHeader,
    pub payload: Vec<u8>,
    /// Unix seconds at which the server received it.
    pub timestamp: i64,
    pub sender: Arc<ClientInfo>,
}

/// What a before-send hook decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send it; with a payload, send that instead (stored, delivered and in the after-send events).
    Allow { payload: Option<Vec<u8>> },
    /// Refuse it: the sender gets `code` and `info`; nothing is stored or delivered.
    Reject { code: i64, info: String },
    /// Swallow it: the sender gets a normal acknowledgement, nobody receives it, no event follows.
    Drop,
}

/// A before-send hook.
#[async_trait]
pub trait BeforeSend: Send + Sync {
    /// Whether a hook judges messages of `channel_type` now.
    fn judges(&self, channel_type: u8) -> bool;
    /// The verdict on `message` (the hook applies its own timeout and failure policy).
    async fn judge(&self, message: &Outgoing) -> Verdict;
}
