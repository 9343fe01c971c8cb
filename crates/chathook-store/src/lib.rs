//! Storage for chathook: one trait per need and the embedded default implementation.
//!
//! The traits ([`UserStore`], [`ChannelStore`], [`MessageStore`], [`PresenceStore`] and the event log's
//! [`chathook_events::EventLog`]) are what the rest of the server sees; [`SqliteStore`] implements them on
//! one SQLite file in WAL mode with a single writer thread that groups every queued write into one durable
//! commit (see `sqlite::writer`). Events that a write causes are appended in the same transaction as the
//! write itself, so nothing is acknowledged before its event is durable. This crate never interprets
//! events and never talks to the network.

mod snowflake;
mod sqlite;
mod types;

pub use snowflake::Snowflake;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use types::*;

use async_trait::async_trait;
use chathook_events::{Event, EventLog, Message};

/// Builds the events that a write causes, from what the write actually did.
pub type EventsFor<T> = Box<dyn FnOnce(&T) -> Vec<Event> + Send>;

/// Errors of the storage layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage failed: {0}")]
    Storage(String),
    #[error("storage is full or read-only: {0}")]
    Unwritable(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("the store is closed")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match err.sqlite_error_code() {
            Some(ErrorCode::DiskFull | ErrorCode::ReadOnly | ErrorCode::CannotOpen) => {
                StoreError::Unwritable(err.to_string())
            }
            _ => StoreError::Storage(err.to_string()),
        }
    }
}

/// Device tokens and user profiles.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores (replaces) the token of one user's device flag.
    async fn set_token(&self, token: TokenRecord) -> Result<(), StoreError>;
    async fn token(&self, uid: &str, device_flag: u8) -> Result<Option<TokenRecord>, StoreError>;
    /// Removes the tokens of one device flag, or of all when `device_flag` is `None`.
    async fn remove_tokens(&self, uid: &str, device_flag: Option<u8>) -> Result<(), StoreError>;
    async fn profile(&self, uid: &str) -> Result<Option<Profile>, StoreError>;
    async fn set_profile(
        &self,
        profile: Profile,
        events: EventsFor<Profile>,
    ) -> Result<(), StoreError>;
}

/// Groups (and any other stored channel): flags, subscribers, blacklist.
#[async_trait]
pub trait ChannelStore: Send + Sync {
    async fn channel(
        &self,
        id: &str,
        channel_type: u8,
    ) -> Result<Option<ChannelRecord>, StoreError>;
    /// Every stored channel marked live, with its subscribers.
    async fn live_channels(&self) -> Result<Vec<ChannelRecord>, StoreError>;
    /// Creates or updates a channel's flags and changes its subscribers in one commit.
    async fn upsert_channel(
        &self,
        flags: ChannelFlags,
        subscribers: SubscriberChange,
        events: EventsFor<ChannelDiff>,
    ) -> Result<ChannelDiff, StoreError>;
    /// Changes an existing channel's subscribers; `Ok(None)` when the channel does not exist.
    async fn change_subscribers(
        &self,
        id: &str,
        channel_type: u8,
        change: SubscriberChange,
        events: EventsFor<ChannelDiff>,
    ) -> Result<Option<ChannelDiff>, StoreError>;
    /// Changes an existing channel's blacklist; `Ok(None)` when the channel does not exist.
    async fn change_blacklist(
        &self,
        id: &str,
        channel_type: u8,
        change: ListChange,
    ) -> Result<Option<ChannelRecord>, StoreError>;
    /// Deletes a channel with its members and lists; `Ok(false)` when it did not exist.
    async fn delete_channel(
        &self,
        id: &str,
        channel_type: u8,
        events: EventsFor<ChannelRecord>,
    ) -> Result<bool, StoreError>;
}

/// Channel history.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Assigns the message its id, sequence number and timestamp, stores it (unless `no_persist`) and
    /// appends the events built from it, all in one commit. A `client_msg_no` already used by the same
    /// sender within `dedup_window_secs` returns the first message instead and writes nothing.
    async fn append_message(
        &self,
        message: NewMessage,
        dedup_window_secs: u64,
        events: EventsFor<Message>,
    ) -> Result<AppendOutcome, StoreError>;
    /// One page of a channel's history, as WuKongIM's `/channel/messagesync` pages it.
    async fn sync(&self, query: SyncQuery) -> Result<SyncPage, StoreError>;
}

/// Connections recorded as online, so that a crash can be reported as offline events on the next start.
#[async_trait]
pub trait PresenceStore: Send + Sync {
    async fn record_online(&self, conn: ConnRecord, events: Vec<Event>) -> Result<(), StoreError>;
    async fn record_offline(&self, conn_id: u64, events: Vec<Event>) -> Result<(), StoreError>;
    /// Removes every recorded connection and appends the events built from them, in one commit.
    async fn recover_connections(
        &self,
        events: EventsFor<Vec<ConnRecord>>,
    ) -> Result<Vec<ConnRecord>, StoreError>;
}

/// Everything the IM core needs from storage.
pub trait Store: UserStore + ChannelStore + MessageStore + PresenceStore + EventLog {}
impl<T: UserStore + ChannelStore + MessageStore + PresenceStore + EventLog> Store for T {}
