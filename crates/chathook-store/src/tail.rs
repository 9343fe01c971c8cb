//! The event log's tail in memory: the events of the newest commits, kept by the writer once they are
//! durable, so that a reader that is caught up (a webhook dispatcher, usually) gets them without
//! reading them back from the database. The log stays the source of truth: a read the tail cannot
//! answer whole (it starts before the tail, or nothing newer is in the tail yet) goes to the database.
//!
//! Bounded by events and by bytes (each event weighs its stored body plus its message's payload):
//! the oldest events leave first. It never holds an event that is not committed.

use std::collections::VecDeque;
use std::sync::Mutex;

use chathook_events::{Event, LoggedEvent};

/// What an event costs in the tail beyond its stored body: the structs and strings around it.
const EVENT_OVERHEAD: usize = 256;

/// The newest committed events at consecutive positions.
pub(crate) struct Tail {
    inner: Mutex<Kept>,
    /// Most events kept (0: the tail is off).
    max_events: usize,
    /// Most bytes kept (by each event's weight); the newest event is kept even if it weighs more.
    max_bytes: usize,
}

/// The kept events. Invariant: `events[i].0.position == first + i`, and `bytes` is the sum of the
/// weights in `events`.
#[derive(Default)]
struct Kept {
    /// Each event with its weight, oldest first.
    events: VecDeque<(LoggedEvent, usize)>,
    /// The position of `events[0]` (meaningless when empty).
    first: u64,
    /// The sum of the kept events' weights.
    bytes: usize,
}

impl Kept {
    /// The position after the newest kept event.
    fn end(&self) -> u64 {
        self.first + self.events.len() as u64
    }
}

/// An event's weight in the tail: its stored body's length, plus its message's payload (a stored
/// message event refers to history instead of holding the payload), plus the overhead.
pub(crate) fn weight(event: &Event, body_len: usize) -> usize {
    let payload = match event {
        Event::MessageSent(m) => m.payload.len(),
        Event::MessageOffline(o) => o.message.payload.len(),
        _ => 0,
    };
    body_len + payload + EVENT_OVERHEAD
}

impl Tail {
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> Self {
        Tail {
            inner: Mutex::new(Kept::default()),
            max_events,
            max_bytes,
        }
    }

    /// Keeps a commit's events (with their weights), called by the writer once the commit is durable
    /// and before the new head is announced. Events that do not follow the kept ones (positions the
    /// tail was not given came between) start the tail afresh.
    pub(crate) fn keep(&self, committed: impl IntoIterator<Item = (LoggedEvent, usize)>) {
        if self.max_events == 0 {
            return;
        }
        let mut kept = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (event, weight) in committed {
            if kept.events.is_empty() || event.position != kept.end() {
                kept.events.clear();
                kept.bytes = 0;
                kept.first = event.position;
            }
            kept.bytes += weight;
            kept.events.push_back((event, weight));
            while kept.events.len() > self.max_events
                || (kept.bytes > self.max_bytes && kept.events.len() > 1)
            {
                if let Some((_, w)) = kept.events.pop_front() {
                    kept.bytes -= w;
                    kept.first += 1;
                }
            }
        }
    }

    /// Drops the kept events up to `position` (included): the log pruned them.
    pub(crate) fn forget_through(&self, position: u64) {
        let mut kept = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while kept.first <= position {
            let Some((_, w)) = kept.events.pop_front() else {
                break;
            };
            kept.bytes -= w;
            kept.first += 1;
        }
    }

    /// Up to `limit` events after position `after`, as the database would answer them with the log's
    /// head at `head`: when the tail holds the next one, and holds `limit` of them or every one up to
    /// `head` (a position past the tail's end may be in the database only). `None` sends the reader
    /// to the database.
    pub(crate) fn read_after(
        &self,
        after: u64,
        limit: usize,
        head: u64,
    ) -> Option<Vec<LoggedEvent>> {
        let kept = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let next = after.checked_add(1)?;
        if kept.events.is_empty() || next < kept.first || next >= kept.end() || limit == 0 {
            return None;
        }
        let from = (next - kept.first) as usize;
        let available = kept.events.len() - from;
        if available < limit && kept.end() <= head {
            return None;
        }
        let events = kept.events.range(from..).take(limit);
        Some(events.map(|(e, _)| e.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathook_events::GroupRef;

    fn event(position: u64) -> (LoggedEvent, usize) {
        let event = Event::GroupDismissed(GroupRef {
            channel_id: format!("g{position}"),
        });
        (
            LoggedEvent {
                position,
                at_ms: 7,
                event,
            },
            100,
        )
    }

    impl Tail {
        /// A read with the head at the tail's end (one node, nothing newer elsewhere).
        fn read_alone(&self, after: u64, limit: usize) -> Option<Vec<LoggedEvent>> {
            let head = self
                .inner
                .lock()
                .map(|k| k.end().saturating_sub(1))
                .unwrap_or(0);
            self.read_after(after, limit, head)
        }
    }

    fn positions(events: Option<Vec<LoggedEvent>>) -> Option<Vec<u64>> {
        events.map(|e| e.iter().map(|e| e.position).collect())
    }

    #[test]
    fn a_caught_up_reader_gets_the_next_events_from_the_tail() {
        let tail = Tail::new(10, 10_000);
        tail.keep((1..=5).map(event));
        assert_eq!(positions(tail.read_alone(2, 10)), Some(vec![3, 4, 5]));
        assert_eq!(positions(tail.read_alone(0, 2)), Some(vec![1, 2]));
    }

    #[test]
    fn a_read_before_the_tail_or_past_its_end_goes_to_the_database() {
        let tail = Tail::new(3, 10_000);
        tail.keep((1..=5).map(event));
        // positions 1 and 2 left the tail (three events kept)
        assert_eq!(positions(tail.read_alone(1, 10)), None);
        assert_eq!(positions(tail.read_alone(2, 10)), Some(vec![3, 4, 5]));
        // nothing newer in the tail yet: the database may already hold it
        assert_eq!(positions(tail.read_alone(5, 10)), None);
        assert_eq!(positions(tail.read_alone(u64::MAX, 10)), None);
    }

    #[test]
    fn the_oldest_events_leave_when_the_bytes_run_out_but_the_newest_stays() {
        let tail = Tail::new(100, 250);
        tail.keep((1..=4).map(event));
        assert_eq!(positions(tail.read_alone(2, 10)), Some(vec![3, 4]));
        assert_eq!(positions(tail.read_alone(1, 10)), None);
        // an event heavier than the whole budget is kept alone
        let (heavy, _) = event(5);
        tail.keep([(heavy, 1_000)]);
        assert_eq!(positions(tail.read_alone(4, 10)), Some(vec![5]));
        assert_eq!(positions(tail.read_alone(3, 10)), None);
    }

    #[test]
    fn events_that_do_not_follow_start_the_tail_afresh() {
        let tail = Tail::new(10, 10_000);
        tail.keep((1..=3).map(event));
        // another node's commit took positions 4 and 5
        tail.keep((6..=7).map(event));
        assert_eq!(positions(tail.read_alone(2, 10)), None);
        assert_eq!(positions(tail.read_alone(5, 10)), Some(vec![6, 7]));
    }

    #[test]
    fn events_the_log_pruned_are_forgotten() {
        let tail = Tail::new(10, 10_000);
        tail.keep((1..=5).map(event));
        tail.forget_through(3);
        assert_eq!(positions(tail.read_alone(0, 10)), None);
        assert_eq!(positions(tail.read_alone(3, 10)), Some(vec![4, 5]));
        tail.forget_through(9);
        assert_eq!(positions(tail.read_alone(3, 10)), None);
        // what follows the pruned events is kept again
        tail.keep((6..=6).map(event));
        assert_eq!(positions(tail.read_alone(5, 10)), Some(vec![6]));
    }

    #[test]
    fn a_read_the_tail_would_cut_short_goes_to_the_database() {
        let tail = Tail::new(10, 10_000);
        tail.keep((1..=5).map(event));
        // another node committed 6 and 7: the tail holds 3..=5 only
        assert_eq!(positions(tail.read_after(2, 10, 7)), None);
        // a read the tail answers whole is still answered
        assert_eq!(positions(tail.read_after(2, 2, 7)), Some(vec![3, 4]));
        assert_eq!(positions(tail.read_after(2, 10, 5)), Some(vec![3, 4, 5]));
    }

    #[test]
    fn an_off_tail_answers_nothing() {
        let tail = Tail::new(0, 10_000);
        tail.keep((1..=3).map(event));
        assert_eq!(positions(tail.read_alone(0, 10)), None);
    }
}
