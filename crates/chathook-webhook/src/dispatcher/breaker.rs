//! An endpoint's circuit breaker: after `breaker_failures` failures in a row it opens, and the endpoint
//! gets one probe at a time, spaced by a delay that doubles after each failed probe up to
//! `breaker_max_probe_delay`. A success closes it.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Breaker {
    /// Failures since the last success.
    consecutive_failures: u32,
    /// While open, only a probe is sent.
    open: bool,
    /// The wait before the next probe (doubles after a failed probe).
    probe_delay: Duration,
    /// When the next probe may start.
    probe_at: Instant,
    /// The delivery probing the open breaker, if one is in flight.
    probe: Option<String>,
}

/// What a finished attempt did to the breaker.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    Opened,
    Closed,
}

impl Breaker {
    pub fn new() -> Breaker {
        Breaker {
            consecutive_failures: 0,
            open: false,
            probe_delay: Duration::ZERO,
            probe_at: Instant::now(),
            probe: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// When the next probe may start (meaningful while open).
    pub fn probe_at(&self) -> Instant {
        self.probe_at
    }

    /// Whether a probe may start now: open, none in flight, and its time has come.
    pub fn may_probe(&self, now: Instant) -> bool {
        self.open && self.probe.is_none() && now >= self.probe_at
    }

    /// `delivery_id` is the probe now in flight.
    pub fn probing(&mut self, delivery_id: &str) {
        self.probe = Some(delivery_id.to_string());
    }

    /// Records the outcome of the attempt of `delivery_id`.
    pub fn record(
        &mut self,
        delivery_id: &str,
        success: bool,
        failures_to_open: u32,
        first_probe_delay: Duration,
        max_probe_delay: Duration,
    ) -> Change {
        let was_probe = self.probe.as_deref() == Some(delivery_id);
        if was_probe {
            self.probe = None;
        }
        if success {
            let was_open = self.open;
            self.consecutive_failures = 0;
            self.open = false;
            self.probe_delay = Duration::ZERO;
            return if was_open {
                Change::Closed
            } else {
                Change::None
            };
        }
        self.consecutive_failures += 1;
        if self.open {
            // Only a failed probe pushes the next one back; attempts that were already in flight when
            // the breaker opened do not.
            if was_probe {
                self.probe_delay = (self.probe_delay * 2).min(max_probe_delay);
                self.probe_at = Instant::now() + self.probe_delay;
            }
            Change::None
        } else if self.consecutive_failures >= failures_to_open {
            self.open = true;
            self.probe_delay = first_probe_delay;
            self.probe_at = Instant::now() + first_probe_delay;
            Change::Opened
        } else {
            Change::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(3);

    fn fail(b: &mut Breaker, id: &str) -> Change {
        b.record(id, false, 3, FIRST, MAX)
    }

    #[test]
    fn opens_after_the_threshold_and_a_success_closes_it() {
        let mut b = Breaker::new();
        assert_eq!(fail(&mut b, "a"), Change::None);
        assert_eq!(fail(&mut b, "b"), Change::None);
        assert_eq!(fail(&mut b, "c"), Change::Opened);
        assert!(b.is_open());
        assert!(!b.may_probe(Instant::now()), "the first probe waits");
        assert!(b.may_probe(Instant::now() + FIRST));
        assert_eq!(b.record("d", true, 3, FIRST, MAX), Change::Closed);
        assert!(!b.is_open());
        assert_eq!(b.consecutive_failures(), 0);
    }

    #[test]
    fn failed_probes_double_the_delay_up_to_the_maximum_and_others_do_not() {
        let mut b = Breaker::new();
        for id in ["a", "b", "c"] {
            fail(&mut b, id);
        }
        let opened_probe_at = b.probe_at();
        // an attempt that was in flight when it opened does not push the probe back
        fail(&mut b, "late");
        assert_eq!(b.probe_at(), opened_probe_at);
        let mut delays = Vec::new();
        for i in 0..3 {
            let id = format!("probe{i}");
            b.probing(&id);
            assert!(
                !b.may_probe(Instant::now() + MAX * 2),
                "one probe at a time"
            );
            let before = Instant::now();
            fail(&mut b, &id);
            delays.push((b.probe_at() - before).as_secs());
        }
        assert_eq!(delays, vec![2, 3, 3], "doubled from 1 s, capped at 3 s");
    }
}
