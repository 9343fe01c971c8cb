//! The batches of the wukongim flavour: messages wait for `msg.notify` and presence changes for
//! `user.onlinestatus` until the batch is full (`msg_notify_max_batch`), would exceed
//! `max_body_bytes`, or its interval has passed; then it is rendered once into one delivery whose id
//! names the first and last log positions it carries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chathook_events::{Event, LoggedEvent, Message};

use super::attempt::Delivery;
use crate::clock::now_ms;
use crate::endpoint::LOCAL_SOURCE;
use crate::format;

/// When batches are flushed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub notify_interval: Duration,
    pub status_interval: Duration,
    /// Most events in one batch.
    pub max_batch: usize,
    /// Most body bytes in one batch (estimated before rendering).
    pub max_bytes: usize,
}

/// One batch being filled.
#[derive(Debug)]
struct Pending<T> {
    /// The log positions of its items, in order.
    positions: Vec<u64>,
    items: Vec<T>,
    /// When its first item came (`None` while empty).
    started: Option<Instant>,
    /// The estimated size of its body.
    bytes: usize,
    /// Where its items came from (`local` or relay source ids), each once, in order of arrival.
    sources: Vec<String>,
}

impl<T> Pending<T> {
    fn new() -> Self {
        Pending {
            positions: Vec::new(),
            items: Vec::new(),
            started: None,
            bytes: 0,
            sources: Vec::new(),
        }
    }

    /// Notes that an item from `source` joins the batch (allocated once per source and batch).
    fn note_source(&mut self, source: &str) {
        if !self.sources.iter().any(|s| s == source) {
            self.sources.push(source.to_string());
        }
    }

    fn push(&mut self, position: u64, item: T, bytes: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.positions.push(position);
        self.items.push(item);
        self.bytes += bytes;
    }

    /// The batch's positions, items and sources (joined with `,`), leaving it empty.
    fn take(&mut self) -> Option<(Vec<u64>, Vec<T>, String)> {
        let taken = std::mem::replace(self, Pending::new());
        (!taken.positions.is_empty())
            .then(|| (taken.positions, taken.items, taken.sources.join(",")))
    }

    fn due(&self, interval: Duration, now: Instant) -> bool {
        self.started.is_some_and(|s| now >= s + interval)
    }
}

/// The batches of one endpoint.
#[derive(Debug)]
pub(crate) struct Batcher {
    notify: Pending<Arc<LoggedEvent>>,
    status: Pending<String>,
}

impl Batcher {
    pub fn new() -> Batcher {
        Batcher {
            notify: Pending::new(),
            status: Pending::new(),
        }
    }

    /// Adds a `message.sent` event; returns the batches that became ready.
    pub fn add_message(&mut self, logged: LoggedEvent, limits: &Limits) -> Vec<Delivery> {
        let mut ready = Vec::new();
        let size = match logged.event.inner() {
            Event::MessageSent(m) => m.payload.len() * 4 / 3 + 320,
            _ => 320,
        };
        if self.notify.bytes + size > limits.max_bytes && !self.notify.positions.is_empty() {
            ready.extend(self.flush_notify());
        }
        self.notify
            .note_source(logged.event.source().unwrap_or(LOCAL_SOURCE));
        self.notify.push(logged.position, Arc::new(logged), size);
        if self.notify.positions.len() >= limits.max_batch {
            ready.extend(self.flush_notify());
        }
        ready
    }

    /// Adds a presence change (`item` is its `user.onlinestatus` string, `source` where it came from);
    /// returns the batch if it became ready.
    pub fn add_status(
        &mut self,
        position: u64,
        item: String,
        source: &str,
        limits: &Limits,
    ) -> Option<Delivery> {
        let bytes = item.len() + 3;
        self.status.note_source(source);
        self.status.push(position, item, bytes);
        let full = self.status.positions.len() >= limits.max_batch
            || self.status.bytes >= limits.max_bytes;
        full.then(|| self.flush_status()).flatten()
    }

    /// The batches whose interval has passed at `now`; with `after_read`, a zero status interval
    /// flushes what one read of the log gathered.
    pub fn due(&mut self, now: Instant, limits: &Limits, after_read: bool) -> Vec<Delivery> {
        let mut ready = Vec::new();
        if self.notify.due(limits.notify_interval, now) {
            ready.extend(self.flush_notify());
        }
        let status_due = self.status.due(limits.status_interval, now)
            || (after_read && limits.status_interval.is_zero() && self.status.started.is_some());
        if status_due {
            ready.extend(self.flush_status());
        }
        ready
    }

    /// When the next batch falls due, if any is being filled.
    pub fn next_due(&self, limits: &Limits) -> Option<Instant> {
        let notify = self.notify.started.map(|s| s + limits.notify_interval);
        let status = self.status.started.map(|s| s + limits.status_interval);
        notify.into_iter().chain(status).min()
    }

    /// Empties every batch unsent; returns the positions they held.
    pub fn drop_all(&mut self) -> Vec<u64> {
        let mut positions = std::mem::replace(&mut self.notify, Pending::new()).positions;
        positions.extend(std::mem::replace(&mut self.status, Pending::new()).positions);
        positions
    }

    fn flush_notify(&mut self) -> Option<Delivery> {
        let (positions, events, sources) = self.notify.take()?;
        let messages: Vec<&Message> = events
            .iter()
            .filter_map(|e| match e.event.inner() {
                Event::MessageSent(m) => Some(m),
                _ => None,
            })
            .collect();
        let at = events.first().map_or(0, |e| e.at_ms);
        Some(Delivery::batch(
            "msg",
            positions,
            format::render_notify(&messages),
            at,
            sources,
        ))
    }

    fn flush_status(&mut self) -> Option<Delivery> {
        let (positions, items, sources) = self.status.take()?;
        Some(Delivery::batch(
            "sts",
            positions,
            format::render_status(&items),
            now_ms(),
            sources,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use chathook_events::EventKind;

    fn limits() -> Limits {
        Limits {
            notify_interval: Duration::from_millis(500),
            status_interval: Duration::from_millis(200),
            max_batch: 3,
            max_bytes: 64 * 1024,
        }
    }

    fn message_at(position: u64) -> LoggedEvent {
        let mut e = catalog::sample(EventKind::MessageSent);
        e.position = position;
        e
    }

    #[test]
    fn a_full_batch_goes_at_once_and_names_its_positions() {
        let mut b = Batcher::new();
        assert!(b.add_message(message_at(4), &limits()).is_empty());
        assert!(b.add_message(message_at(5), &limits()).is_empty());
        let ready = b.add_message(message_at(9), &limits());
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].id, "msg_4_9");
        assert_eq!(ready[0].positions, vec![4, 5, 9]);
        assert_eq!(ready[0].event, "msg.notify");
        let body: serde_json::Value = serde_json::from_slice(&ready[0].body).unwrap();
        assert_eq!(body.as_array().unwrap().len(), 3);
        assert_eq!(b.next_due(&limits()), None, "nothing left waiting");
    }

    #[test]
    fn a_batch_that_would_grow_past_the_byte_limit_goes_first() {
        let small = Limits {
            max_bytes: 700,
            ..limits()
        };
        let mut b = Batcher::new();
        assert!(b.add_message(message_at(1), &small).is_empty());
        let ready = b.add_message(message_at(2), &small);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].positions, vec![1]);
    }

    #[test]
    fn batches_fall_due_after_their_interval() {
        let mut b = Batcher::new();
        b.add_message(message_at(1), &limits());
        assert!(b
            .add_status(2, "alice-0-1-1-1-1".into(), "local", &limits())
            .is_none());
        let now = Instant::now();
        assert!(b.due(now, &limits(), false).is_empty());
        let status = b.due(now + Duration::from_millis(250), &limits(), false);
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].event, "user.onlinestatus");
        let notify = b.due(now + Duration::from_millis(600), &limits(), false);
        assert_eq!(notify.len(), 1);
        assert_eq!(notify[0].event, "msg.notify");
    }

    #[test]
    fn a_batch_names_each_source_of_its_events_once() {
        let mut b = Batcher::new();
        let relayed = |position| {
            let mut e = message_at(position);
            e.event = chathook_events::Event::relayed("src_a", e.event);
            e
        };
        b.add_message(message_at(1), &limits());
        b.add_message(relayed(2), &limits());
        let ready = b.add_message(relayed(3), &limits());
        assert_eq!(ready[0].source, "local,src_a");
        assert_eq!(ready[0].positions, vec![1, 2, 3]);
        let body: serde_json::Value = serde_json::from_slice(&ready[0].body).unwrap();
        assert_eq!(
            body.as_array().unwrap().len(),
            3,
            "relayed messages are in the batch too"
        );
    }

    #[test]
    fn dropping_the_batches_gives_their_positions_back() {
        let mut b = Batcher::new();
        b.add_message(message_at(7), &limits());
        b.add_status(8, "x".into(), "local", &limits());
        assert_eq!(b.drop_all(), vec![7, 8]);
        assert_eq!(b.next_due(&limits()), None);
    }
}
