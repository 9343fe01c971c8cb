//! An endpoint's pause after a throttling answer (429, 502, 503, 504; see `client::is_throttling`): no
//! new attempt starts until the pause ends. The pause is the answer's `Retry-After`, or else a backoff
//! that starts at [`FIRST_BACKOFF`] and doubles with each throttling answer in a row up to
//! [`MAX_BACKOFF`]; any other answer ends the run. The delivery that was throttled is parked on its own
//! schedule as any failure is (`attempt::settle`); this pause holds back the others.

use std::time::{Duration, Instant};

/// The first pause without a `Retry-After`.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause without a `Retry-After`.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct Throttle {
    /// No new attempt starts before this; `None` while not throttled.
    until: Option<Instant>,
    /// The next pause without a `Retry-After`: zero until the first throttling answer of a run.
    backoff: Duration,
}

impl Throttle {
    /// Whether new attempts wait at `now`.
    pub fn holds(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }

    /// When the pause ends (`None` while not throttled).
    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    /// Records an answer: `throttled` with its `retry_after`, or any other outcome (which ends a run).
    pub fn record(&mut self, throttled: bool, retry_after: Option<Duration>, now: Instant) {
        if !throttled {
            self.backoff = Duration::ZERO;
            return;
        }
        self.backoff = if self.backoff.is_zero() {
            FIRST_BACKOFF
        } else {
            (self.backoff * 2).min(MAX_BACKOFF)
        };
        let pause = retry_after.unwrap_or(self.backoff);
        let until = now + pause;
        // A later answer never shortens a pause an earlier one asked for.
        self.until = Some(self.until.map_or(until, |u| u.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttling_answer_without_retry_after_pauses_for_a_doubling_backoff() {
        let now = Instant::now();
        let mut t = Throttle::default();
        assert!(!t.holds(now));
        t.record(true, None, now);
        assert_eq!(t.until(), Some(now + FIRST_BACKOFF));
        assert!(t.holds(now) && !t.holds(now + FIRST_BACKOFF));
        let later = now + FIRST_BACKOFF;
        t.record(true, None, later);
        assert_eq!(t.until(), Some(later + FIRST_BACKOFF * 2));
        for _ in 0..10 {
            t.record(true, None, later);
        }
        assert_eq!(t.until(), Some(later + MAX_BACKOFF));
    }

    #[test]
    fn retry_after_sets_the_pause_and_another_answer_ends_the_run() {
        let now = Instant::now();
        let mut t = Throttle::default();
        t.record(true, Some(Duration::from_secs(30)), now);
        assert_eq!(t.until(), Some(now + Duration::from_secs(30)));
        // A shorter pause asked later does not cut the first short.
        t.record(true, Some(Duration::from_secs(1)), now);
        assert_eq!(t.until(), Some(now + Duration::from_secs(30)));
        t.record(false, None, now);
        let after = now + Duration::from_secs(30);
        t.record(true, None, after);
        assert_eq!(
            t.until(),
            Some(after + FIRST_BACKOFF),
            "the backoff starts over"
        );
    }
}
