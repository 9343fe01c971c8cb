//! The domain events of chathook and the durable event log they are appended to.
//!
//! This crate owns the one typed [`Event`] enum (presence changes, messages, group changes, profile
//! changes, and the webhook engine's operational events), the [`Message`] it carries, and the [`EventLog`] trait: the consumer API (read from a
//! position, acknowledge up to a position, wait for new events) that the webhook engine reads through.
//! It knows nothing of storage engines, gateways or webhooks: the store implements the trait, the IM core
//! produces events, the webhook engine consumes them.

mod client;
mod event;
mod hook;
mod log;
mod message;
mod operational;

pub use client::ClientInfo;
pub use event::{
    Event, EventKind, Foreign, GroupChange, GroupRef, LiveMemberStatus, OfflineMessage, Origin,
    PresenceChange, PresenceReason, ProfileChange, Relayed,
};
pub use hook::{BeforeSend, Outgoing, Verdict};
pub use log::{EventLog, EventLogError, LoggedEvent, StartAt};
pub use message::{ChannelType, Message, MessageHeader};
pub use operational::{EndpointNotice, ExhaustedNotice, RelayRefusalNotice};
