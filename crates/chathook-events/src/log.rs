//! The event-log consumer API: what the webhook engine (or any other consumer) reads events through.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Event;

/// An event with its place in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent {
    /// Position in the log: increasing, unique, never reused (gaps are possible).
    pub position: u64,
    /// Unix milliseconds at which the event was appended.
    pub at_ms: i64,
    pub event: Event,
}

/// Where a consumer registered for the first time starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Only events appended after registration.
    Head,
    /// Everything the log still holds.
    Beginning,
}

#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error("event log storage failed: {0}")]
    Storage(String),
    #[error("stored event at position {position} is unreadable: {reason}")]
    Corrupt { position: u64, reason: String },
    #[error("unknown consumer {0:?}")]
    UnknownConsumer(String),
}

/// A durable, ordered log of events with durable per-consumer cursors.
///
/// Retention never removes an event that a registered consumer holding the log has not acknowledged. A
/// consumer holds the log from registration; [`EventLog::set_holding`] lets one stop (and start again),
/// so that a consumer that is away for long does not keep the log growing.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends events in one durable commit and returns the position of the last one (or the head if empty).
    async fn append(&self, events: Vec<Event>) -> Result<u64, EventLogError>;

    /// Up to `limit` events with positions greater than `after`, in order.
    async fn read_after(&self, after: u64, limit: usize)
        -> Result<Vec<LoggedEvent>, EventLogError>;

    /// Registers a consumer (idempotent) and returns the position it has acknowledged up to.
    async fn register_consumer(&self, name: &str, start: StartAt) -> Result<u64, EventLogError>;

    /// Removes a consumer so that retention no longer waits for it.
    async fn remove_consumer(&self, name: &str) -> Result<(), EventLogError>;

    /// Durably records that `name` has processed every event up to and including `position`.
    async fn ack(&self, name: &str, position: u64) -> Result<(), EventLogError>;

    /// Moves a consumer's cursor to exactly `position`, back or forward (re-delivery, or skipping).
    async fn seek_consumer(&self, name: &str, position: u64) -> Result<(), EventLogError>;

    /// The cursor position from which a consumer reads the events appended at or after `at_ms`: the
    /// position before the first such event (the head when there is none).
    async fn position_before(&self, at_ms: i64) -> Result<u64, EventLogError>;

    /// The acknowledged position of a registered consumer.
    async fn consumer_position(&self, name: &str) -> Result<u64, EventLogError>;

    /// Whether retention waits for `name` (true from registration).
    async fn set_holding(&self, name: &str, holding: bool) -> Result<(), EventLogError>;

    /// The oldest event still stored: its position and time (unix ms), `None` when the log is empty.
    async fn oldest(&self) -> Result<Option<(u64, i64)>, EventLogError>;

    /// The lowest position a holding consumer has acknowledged: retention keeps every event after it.
    async fn held_from(&self) -> Result<Option<u64>, EventLogError>;

    /// The position of the newest committed event (0 when the log was never written).
    fn head(&self) -> u64;

    /// Returns once the head is greater than `position` (at once if it already is).
    async fn wait_beyond(&self, position: u64);
}
