//! Typed errors of the IM core, each with WuKongIM's reason code and a stable machine-readable code.

use chathook_store::StoreError;

/// WuKongIM's reason codes (wkproto `ReasonCode`), as JSON-RPC results carry them.
pub mod reason {
    pub const SUCCESS: u8 = 1;
    pub const AUTH_FAIL: u8 = 2;
    pub const SUBSCRIBER_NOT_EXIST: u8 = 3;
    pub const IN_BLACKLIST: u8 = 4;
    pub const CHANNEL_NOT_EXIST: u8 = 5;
    pub const PAYLOAD_DECODE_ERROR: u8 = 9;
    pub const NOT_ALLOW_SEND: u8 = 11;
    pub const NOT_IN_WHITELIST: u8 = 13;
    pub const CONNECT_KICK: u8 = 12;
    pub const SYSTEM_ERROR: u8 = 15;
    pub const CHANNEL_ID_ERROR: u8 = 16;
    pub const BAN: u8 = 19;
    pub const CLIENT_KEY_IS_EMPTY: u8 = 21;
    pub const RATE_LIMIT: u8 = 22;
    pub const NOT_SUPPORT_CHANNEL_TYPE: u8 = 23;
    pub const DISBAND: u8 = 24;
}

/// Why a message was refused.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("payload must not be empty")]
    EmptyPayload,
    #[error("payload is {size} bytes, above the limit of {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("payload is not valid: {0}")]
    BadPayload(String),
    #[error("channel_type {0} is not supported (1 person, 2 group)")]
    UnsupportedChannelType(u8),
    #[error("channel_id must not be empty")]
    EmptyChannelId,
    #[error("{field} is {size} bytes, above the limit of {limit}")]
    TooLong {
        field: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("the channel does not exist")]
    ChannelNotFound,
    #[error("the sender is not a subscriber of the channel")]
    NotMember,
    #[error("the sender is on the channel's blacklist")]
    Blacklisted,
    #[error("the sender is not on the channel's whitelist")]
    NotWhitelisted,
    #[error("the channel or the sender is banned")]
    Banned,
    #[error("the channel is disbanded")]
    Disbanded,
    #[error("too many sends: at most {0} per second on one connection")]
    RateLimited(u32),
    /// The before-send hook refused it, with the code and text the sender is given.
    #[error("refused by the before-send hook: ErrorCode {code} ({info})")]
    RejectedByHook { code: i64, info: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SendError {
    /// The WuKongIM reason code a `send` result carries.
    pub fn reason_code(&self) -> u8 {
        match self {
            SendError::EmptyPayload
            | SendError::PayloadTooLarge { .. }
            | SendError::BadPayload(_) => reason::PAYLOAD_DECODE_ERROR,
            SendError::UnsupportedChannelType(_) => reason::NOT_SUPPORT_CHANNEL_TYPE,
            SendError::EmptyChannelId => reason::CHANNEL_ID_ERROR,
            SendError::TooLong { field, .. } if *field == "channel_id" => reason::CHANNEL_ID_ERROR,
            SendError::TooLong { .. } => reason::PAYLOAD_DECODE_ERROR,
            SendError::ChannelNotFound => reason::CHANNEL_NOT_EXIST,
            SendError::NotMember => reason::SUBSCRIBER_NOT_EXIST,
            SendError::Blacklisted => reason::IN_BLACKLIST,
            SendError::NotWhitelisted => reason::NOT_IN_WHITELIST,
            SendError::Banned => reason::BAN,
            SendError::Disbanded => reason::DISBAND,
            SendError::RateLimited(_) => reason::RATE_LIMIT,
            SendError::RejectedByHook { .. } => reason::NOT_ALLOW_SEND,
            SendError::Store(_) => reason::SYSTEM_ERROR,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SendError::EmptyPayload => "payload_empty",
            SendError::PayloadTooLarge { .. } => "payload_too_large",
            SendError::BadPayload(_) => "payload_invalid",
            SendError::UnsupportedChannelType(_) => "channel_type_unsupported",
            SendError::EmptyChannelId => "channel_id_empty",
            SendError::TooLong { .. } => "field_too_long",
            SendError::ChannelNotFound => "channel_not_found",
            SendError::NotMember => "not_a_subscriber",
            SendError::Blacklisted => "sender_blacklisted",
            SendError::NotWhitelisted => "sender_not_whitelisted",
            SendError::Banned => "channel_banned",
            SendError::Disbanded => "channel_disbanded",
            SendError::RateLimited(_) => "rate_limited",
            SendError::RejectedByHook { .. } => "rejected_by_hook",
            SendError::Store(StoreError::Unwritable(_)) => "storage_unwritable",
            SendError::Store(_) => "storage_error",
        }
    }

    /// The request field the error is about, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            SendError::EmptyPayload
            | SendError::PayloadTooLarge { .. }
            | SendError::BadPayload(_) => Some("payload"),
            SendError::UnsupportedChannelType(_) => Some("channel_type"),
            SendError::EmptyChannelId | SendError::ChannelNotFound => Some("channel_id"),
            SendError::TooLong { field, .. } => Some(field),
            SendError::NotMember | SendError::Blacklisted | SendError::NotWhitelisted => {
                Some("from_uid")
            }
            _ => None,
        }
    }

    /// True when the fault is the server's, not the request's.
    pub fn is_internal(&self) -> bool {
        matches!(self, SendError::Store(_))
    }
}

/// Why a channel change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("channel_id must not be empty and may hold only letters, digits and - _ . @ :")]
    BadChannelId,
    #[error("channel_type {0} is not supported here (2 group)")]
    UnsupportedChannelType(u8),
    #[error("the channel does not exist")]
    NotFound,
    #[error("a group has at most {limit} subscribers; this change would make {size}")]
    TooManyMembers { size: usize, limit: usize },
    #[error("subscribers must not be empty")]
    NoSubscribers,
    #[error(transparent)]
    Store(#[from] StoreError),
}
