//! Storage for chathook: one trait per need and two implementations of them.
//!
//! The traits ([`UserStore`], [`ChannelStore`], [`MessageStore`], [`CmdQueueStore`],
//! [`ConversationStore`], [`PresenceStore`], [`WebhookStore`], the event log's
//! [`chathook_events::EventLog`], and [`ClusterStore`] for what several nodes coordinate through) are what
//! the rest of the server sees. [`SqliteStore`], the embedded default, implements them on one SQLite file
//! in WAL mode with a single writer thread that groups every queued write into one durable commit (see
//! `sqlite::writer`); [`PgStore`] on a PostgreSQL database shared by several nodes, with one
//! group-committing writer per node (see `postgres::writer`). Events that a write causes are appended in the
//! same transaction as the write itself, so nothing is acknowledged before its event is durable. This crate
//! never interprets events and talks to nothing but its database.

mod header;
pub mod postgres;
pub mod sealing;
mod snowflake;
mod sqlite;
mod tail;
mod types;

pub use postgres::{PgOptions, PgStore};
pub use snowflake::Snowflake;
pub use sqlite::{SqliteOptions, SqliteStore, SQLITE_FILE};
pub use types::*;

use std::sync::Arc;

use async_trait::async_trait;
use chathook_events::{Event, EventLog, Message};

/// Builds the events that a write causes, from what the write actually did.
pub type EventsFor<T> = Box<dyn FnOnce(&T) -> Vec<Event> + Send>;

/// The wall clock in unix milliseconds (0 for a clock before 1970): the time every write stamps.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

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

/// Device tokens, user profiles and the system accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// The uids marked as system accounts (WuKongIM's `systemuids`).
    async fn system_uids(&self) -> Result<Vec<String>, StoreError>;
    /// Adds (or, with `remove`, removes) system uids; returns the whole set after.
    async fn change_system_uids(
        &self,
        uids: Vec<String>,
        remove: bool,
    ) -> Result<Vec<String>, StoreError>;
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

/// Groups and person channels: flags, subscribers, blacklist and whitelist.
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
    /// Changes a channel's blacklist or whitelist. A missing channel is created (every flag off) when
    /// `create_missing`, and otherwise answered `Ok(None)`.
    async fn change_list(
        &self,
        id: &str,
        channel_type: u8,
        list: UidList,
        change: ListChange,
        create_missing: bool,
    ) -> Result<Option<ChannelRecord>, StoreError>;
    /// Deletes a channel's members and lists and marks it disbanded (so a send to it is told so);
    /// `Ok(false)` when it did not exist.
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
    /// A new message id, for a message that is acknowledged but never stored (dropped by a before-send
    /// hook): unique among every id this store gives.
    async fn reserve_message_id(&self) -> Result<i64, StoreError>;
    /// The newest sequence number of a channel's history (0 when it has none).
    async fn last_seq(&self, channel_key: &str, channel_type: u8) -> Result<u64, StoreError>;
    /// The stored messages of a channel named by seq, by id or by `client_msg_no` (each found one once,
    /// in that order of the lookup; the ones not found are left out), no more of them than the lookup's
    /// `max_bytes` (the first always): `more` when found ones were left out for it.
    async fn find_messages(&self, lookup: MessageLookup) -> Result<SyncPage, StoreError>;
    /// Deletes a channel's stored messages with seqs from `start` to `end` (both included); returns
    /// how many. The channel's seqs go on after its newest seq ever, deleted or not.
    async fn delete_range(
        &self,
        channel_key: &str,
        channel_type: u8,
        start: u64,
        end: u64,
    ) -> Result<usize, StoreError>;
}

/// Each user's queue of CMD (`sync_once`) messages, filled by [`MessageStore::append_message`] in the
/// message's own commit, read by WuKongIM's `/message/sync` and emptied by `/message/syncack`.
#[async_trait]
pub trait CmdQueueStore: Send + Sync {
    /// Up to `limit` queued messages of `uid` after queue position `after`, and no more of them than
    /// `max_bytes` (the first always), oldest first, each with its queue position as `message_seq`;
    /// messages expired at `now` (unix seconds) are left out.
    async fn cmd_messages(
        &self,
        uid: &str,
        after: u64,
        limit: usize,
        max_bytes: usize,
        now: i64,
    ) -> Result<Vec<Message>, StoreError>;
    /// Removes `uid`'s queued messages up to position `up_to`; returns how many.
    async fn ack_cmd_messages(&self, uid: &str, up_to: u64) -> Result<usize, StoreError>;
    /// Removes `uid`'s queued message `message_id` (a primary device acknowledged it live, so
    /// `/message/sync` need not hand it out again); returns how many (0 or 1).
    async fn remove_cmd_message(&self, uid: &str, message_id: i64) -> Result<usize, StoreError>;
}

/// What conversation lists are made of: the channels a user is in (groups they subscribe to, person
/// channels with history), each with its newest message and the user's read and delete positions.
/// Nothing is stored per recipient per message.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Every conversation of `uid`, in no particular order.
    async fn conversations(&self, uid: &str) -> Result<Vec<ConversationRecord>, StoreError>;
    /// The newest seq `uid` sent in the channel after `after`, looking at the newest `scan_max` messages
    /// at most; 0 when none.
    async fn own_last_seq(
        &self,
        channel_key: &str,
        channel_type: u8,
        uid: &str,
        after: u64,
        scan_max: usize,
    ) -> Result<u64, StoreError>;
    /// Moves `uid`'s read and delete positions in a channel forward (never back).
    async fn mark_conversation(
        &self,
        uid: &str,
        channel_key: &str,
        channel_type: u8,
        read_seq: u64,
        deleted_seq: u64,
    ) -> Result<(), StoreError>;
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

/// What one relay ingest stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ingested {
    /// Events appended to the event log.
    pub stored: usize,
    /// Events left out: their key was already reported within the window (or twice in the batch).
    pub duplicates: usize,
}

/// Relay mode's durable state: relay sources (opaque JSON documents, like endpoints) and the ingest
/// of what a source reported, with the source's de-duplication keys (message ids).
#[async_trait]
pub trait RelayStore: Send + Sync {
    async fn put_relay_source(&self, id: &str, document: String) -> Result<(), StoreError>;
    /// Removes a source with its de-duplication keys; whether it existed.
    async fn delete_relay_source(&self, id: &str) -> Result<bool, StoreError>;
    /// Every source document, by id.
    async fn relay_sources(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Appends `events` to the event log in one durable commit, each with its de-duplication key if it
    /// has one: an event whose key `source` reported at or after `seen_since_ms` (or earlier in
    /// `events`) is left out; the others' keys are recorded (at now) in the same commit.
    async fn relay_ingest(
        &self,
        source: &str,
        events: Vec<(Event, Option<i64>)>,
        seen_since_ms: i64,
    ) -> Result<Ingested, StoreError>;
    /// Removes de-duplication keys recorded before `before_ms`; how many.
    async fn prune_relay_keys(&self, before_ms: i64) -> Result<usize, StoreError>;
}

/// Keeps the first event of each key in `events` and counts the others.
pub(crate) fn first_of_each_key(
    events: Vec<(Event, Option<i64>)>,
) -> (Vec<(Event, Option<i64>)>, usize) {
    let mut seen = std::collections::HashSet::new();
    let total = events.len();
    let kept: Vec<_> = events
        .into_iter()
        .filter(|(_, key)| key.is_none_or(|k| seen.insert(k)))
        .collect();
    let dropped = total - kept.len();
    (kept, dropped)
}

/// The webhook engine's durable state: endpoint definitions (opaque JSON documents), settings, the
/// deliveries waiting for a retry or dead-lettered, and the attempt log.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn put_endpoint(&self, id: &str, document: String) -> Result<(), StoreError>;
    /// Removes the endpoint with its health, its pending deliveries, its attempts and its event-log
    /// consumer `consumer`.
    async fn delete_endpoint(&self, id: &str, consumer: &str) -> Result<bool, StoreError>;
    async fn endpoints(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Stores what the server observed about an endpoint (its health), a document apart from the
    /// endpoint's settings so that neither writer overwrites the other; removed with the endpoint.
    async fn put_endpoint_health(&self, id: &str, document: String) -> Result<(), StoreError>;
    /// Every stored health document, by endpoint id.
    async fn endpoint_health(&self) -> Result<Vec<(String, String)>, StoreError>;
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn put_setting(&self, key: &str, value: String) -> Result<(), StoreError>;
    /// Inserts or replaces deliveries (by `delivery_id`) in one commit.
    async fn park_deliveries(&self, deliveries: Vec<PendingDelivery>) -> Result<(), StoreError>;
    /// Removes an endpoint's delivered ones (a delivery id names one event or batch for every endpoint).
    async fn complete_deliveries(
        &self,
        endpoint_id: &str,
        ids: Vec<String>,
    ) -> Result<(), StoreError>;
    /// Live deliveries of an endpoint due at `now_ms`, oldest first.
    async fn due_deliveries(
        &self,
        endpoint_id: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError>;
    /// When the endpoint's next live delivery due strictly after `after_ms` is due (unix ms).
    async fn next_due(&self, endpoint_id: &str, after_ms: i64) -> Result<Option<i64>, StoreError>;
    /// Dead-lettered deliveries of an endpoint, newest first.
    async fn dead_letters(
        &self,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError>;
    /// Brings dead letters back to life for an attempt now: one by id, or every one dead-lettered at or
    /// after `since_ms`. Returns how many.
    async fn revive(
        &self,
        endpoint_id: &str,
        delivery_id: Option<&str>,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<usize, StoreError>;
    /// (live deliveries waiting for a retry, dead letters, event time of the oldest live one).
    async fn pending_summary(
        &self,
        endpoint_id: &str,
    ) -> Result<(u64, u64, Option<i64>), StoreError>;
    async fn record_attempts(&self, attempts: Vec<AttemptRecord>) -> Result<(), StoreError>;
    /// Attempts, newest first, with their ids (without their request bodies).
    async fn attempts(&self, query: AttemptQuery) -> Result<Vec<(i64, AttemptRecord)>, StoreError>;
    /// One attempt of an endpoint, with its request body.
    async fn attempt(
        &self,
        endpoint_id: &str,
        id: i64,
    ) -> Result<Option<AttemptRecord>, StoreError>;
    /// Deletes attempts older than `before_ms`; returns how many.
    async fn prune_attempts(&self, before_ms: i64) -> Result<usize, StoreError>;
}

/// Events one node committed together: they hold the log positions `first_position..` in order.
#[derive(Debug, Clone)]
pub struct Committed {
    pub first_position: u64,
    pub events: Arc<[Event]>,
    /// The notes of the commit's stored messages ([`NewMessage::note`]), in commit order, each with
    /// its message's id.
    pub notes: Vec<(i64, CommitNote)>,
}

/// Called on the writer's task after each commit that appended events, in commit order; must not block.
pub type CommitObserver = Box<dyn Fn(&Committed) + Send + Sync>;

/// What a store shared by several nodes (PostgreSQL) offers their coordination: the commits as they
/// happen, the other nodes' connections, the nodes' heartbeats and named leases. Times are the
/// database's clock, so that the nodes' clocks need not agree.
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// This node's id (in its message ids, connection records, heartbeats and leases).
    fn node_id(&self) -> u16;
    /// Sets the observer of this node's commits (once; later calls are ignored).
    fn observe_commits(&self, observer: CommitObserver);
    /// The event log's head and every connection other nodes hold, read at one instant: the events
    /// after that head are the changes since.
    async fn cluster_presence(&self) -> Result<(u64, Vec<(u16, ConnRecord)>), StoreError>;
    /// Records that this node is alive now.
    async fn heartbeat(&self) -> Result<(), StoreError>;
    /// Records that this node stopped (it holds no connection any more): the others stop counting it
    /// as live, and its figures, at once.
    async fn leave(&self) -> Result<(), StoreError>;
    /// Records this node's figures now (a JSON document the store keeps as it is; the console's
    /// overview sums the nodes').
    async fn publish_figures(&self, figures: &str) -> Result<(), StoreError>;
    /// The figures of every node that published at most `window_ms` ago, in node order: (node, age
    /// in milliseconds, document).
    async fn node_figures(&self, window_ms: i64) -> Result<Vec<(u16, i64, String)>, StoreError>;
    /// The nodes (this one included) whose last heartbeat is at most `window_ms` old, in order.
    async fn live_nodes(&self, window_ms: i64) -> Result<Vec<u16>, StoreError>;
    /// Other nodes that hold connections and whose last heartbeat is older than `timeout_ms` (or that
    /// never beat).
    async fn silent_nodes(&self, timeout_ms: i64) -> Result<Vec<u16>, StoreError>;
    /// Removes the connections of `node` if it is still silent for `timeout_ms` and no other node is at
    /// it, and appends the events built from them, in one commit; the connections removed.
    async fn take_over_connections(
        &self,
        node: u16,
        timeout_ms: i64,
        events: EventsFor<Vec<ConnRecord>>,
    ) -> Result<Vec<ConnRecord>, StoreError>;
    /// Takes or renews, for `ttl_ms`, each named lease that is free, expired or already this node's;
    /// answers the names this node holds now.
    async fn acquire_leases(
        &self,
        names: Vec<String>,
        ttl_ms: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// Gives up leases this node holds (at shutdown, so that another node takes them at once).
    async fn release_leases(&self, names: Vec<String>) -> Result<(), StoreError>;
}

/// Counters of a store's writer, shared with `/metrics`.
#[derive(Clone)]
pub struct WriterMetrics {
    /// Durable commits.
    pub commits: prometheus_client::metrics::counter::Counter,
    /// Writes committed (several per commit).
    pub jobs: prometheus_client::metrics::counter::Counter,
    pub failed_commits: prometheus_client::metrics::counter::Counter,
    /// PostgreSQL: how long each commit that appended events held the event log's head row (from
    /// its lock to the end of the commit). Every node's appends queue on that row, so its mean
    /// bounds the commits per second of the whole cluster.
    pub log_lock_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        WriterMetrics {
            commits: Default::default(),
            jobs: Default::default(),
            failed_commits: Default::default(),
            // 0.125 ms to about 0.5 s.
            log_lock_seconds: prometheus_client::metrics::histogram::Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.000_125, 2.0, 13),
            ),
        }
    }
}

/// What a server does to its store besides reading and writing: retention, and its writer's counters.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// Removes `client_msg_no` claims older than the de-duplication window and events older than
    /// `event_retention_ms` that every holding consumer has acknowledged; returns (claims, events).
    async fn prune(
        &self,
        dedup_window_secs: u64,
        event_retention_ms: i64,
    ) -> Result<(usize, usize), StoreError>;
    fn writer_metrics(&self) -> WriterMetrics;
    /// Where the store is, for the log (a path, or a database without its credentials).
    fn describe(&self) -> String;
}

/// Everything a server needs from its store, whichever the backend.
pub trait ServerStore: Store + WebhookStore + RelayStore + Maintenance {}
impl<T> ServerStore for T where T: Store + WebhookStore + RelayStore + Maintenance {}

/// Everything the IM core needs from storage.
pub trait Store:
    UserStore
    + ChannelStore
    + MessageStore
    + CmdQueueStore
    + ConversationStore
    + PresenceStore
    + EventLog
{
}
impl<T> Store for T where
    T: UserStore
        + ChannelStore
        + MessageStore
        + CmdQueueStore
        + ConversationStore
        + PresenceStore
        + EventLog
{
}
