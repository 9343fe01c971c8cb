//! An endpoint's dead letters as `delivery.exhausted` notices: the first dead letter is reported at
//! once and opens a window of `webhook.exhausted_notice_window`; those that follow within it are
//! counted and reported together when it ends (which opens the next window). A window that ends with
//! nothing counted closes, so the next dead letter is reported at once again.

use std::time::{Duration, Instant};

use chathook_events::ExhaustedNotice;

use crate::clock::now_ms;
use crate::endpoint::Endpoint;

/// One dead letter: which delivery, of which event, and why.
pub(crate) struct DeadLetter<'a> {
    pub delivery_id: &'a str,
    pub event: &'a str,
    pub error: &'a str,
}

#[derive(Debug, Default)]
pub(crate) struct ExhaustedWindow {
    /// When the open window ends; `None` while none is open (the next dead letter is reported at once).
    until: Option<Instant>,
    /// Dead letters of the open window not reported yet (their count, the first's time, the last's
    /// details); `None` while there are none.
    pending: Option<ExhaustedNotice>,
}

impl ExhaustedWindow {
    /// Counts a dead letter of `endpoint` at `now`; the notice to send now, if it is the first of a
    /// window.
    pub fn dead_lettered(
        &mut self,
        endpoint: &Endpoint,
        dead: DeadLetter<'_>,
        now: Instant,
        window: Duration,
    ) -> Option<ExhaustedNotice> {
        let at = now_ms();
        let open = self.until.is_some_and(|until| now < until);
        match (&mut self.pending, open) {
            (Some(n), true) => {
                n.count += 1;
                n.last_at_ms = at;
                n.last_delivery_id = dead.delivery_id.to_string();
                n.last_event = dead.event.to_string();
                n.last_error = dead.error.to_string();
                None
            }
            (None, true) => {
                self.pending = Some(notice(endpoint, dead, at));
                None
            }
            (_, false) => {
                // A pending count of an ended window goes out with this one.
                let earlier = self.pending.take();
                self.until = Some(now + window);
                let mut n = notice(endpoint, dead, at);
                if let Some(e) = earlier {
                    n.count += e.count;
                    n.first_at_ms = e.first_at_ms;
                }
                Some(n)
            }
        }
    }

    /// At the window's end: the notice of what it counted, if anything (a new window opens with it).
    pub fn due(&mut self, now: Instant, window: Duration) -> Option<ExhaustedNotice> {
        if self.until.is_none_or(|until| now < until) {
            return None;
        }
        match self.pending.take() {
            Some(n) => {
                self.until = Some(now + window);
                Some(n)
            }
            None => {
                self.until = None;
                None
            }
        }
    }

    /// When `due` next has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        self.until.filter(|_| self.pending.is_some())
    }
}

fn notice(endpoint: &Endpoint, dead: DeadLetter<'_>, at: i64) -> ExhaustedNotice {
    ExhaustedNotice {
        endpoint_id: endpoint.id.clone(),
        url: endpoint.url.clone(),
        count: 1,
        first_at_ms: at,
        last_at_ms: at,
        last_delivery_id: dead.delivery_id.to_string(),
        last_event: dead.event.to_string(),
        last_error: dead.error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint::new(
            "ep_1".into(),
            "http://x".into(),
            crate::Flavour::Standard,
            vec![],
            "s".into(),
        )
    }

    fn dead(id: &str) -> DeadLetter<'_> {
        DeadLetter {
            delivery_id: id,
            event: "message.sent",
            error: "HTTP 500",
        }
    }

    const W: Duration = Duration::from_secs(60);

    #[test]
    fn the_first_dead_letter_is_reported_at_once_and_the_rest_of_its_window_together() {
        let (e, t0) = (endpoint(), Instant::now());
        let mut w = ExhaustedWindow::default();
        let first = w.dead_lettered(&e, dead("evt_1"), t0, W).unwrap();
        assert_eq!((first.count, first.last_delivery_id.as_str()), (1, "evt_1"));
        assert!(w.dead_lettered(&e, dead("evt_2"), t0 + W / 2, W).is_none());
        assert!(w.dead_lettered(&e, dead("evt_3"), t0 + W / 2, W).is_none());
        assert_eq!(w.deadline(), Some(t0 + W));
        assert!(w.due(t0 + W / 2, W).is_none(), "not before the window ends");
        let rest = w.due(t0 + W, W).unwrap();
        assert_eq!((rest.count, rest.last_delivery_id.as_str()), (2, "evt_3"));
        assert_eq!(w.deadline(), None, "nothing counted in the new window");
    }

    #[test]
    fn a_window_that_ends_empty_closes_so_the_next_dead_letter_is_reported_at_once() {
        let (e, t0) = (endpoint(), Instant::now());
        let mut w = ExhaustedWindow::default();
        assert!(w.dead_lettered(&e, dead("evt_1"), t0, W).is_some());
        assert!(w.due(t0 + W, W).is_none());
        let later = w.dead_lettered(&e, dead("evt_9"), t0 + W * 3, W).unwrap();
        assert_eq!(later.count, 1);
    }

    #[test]
    fn a_count_left_from_an_ended_window_joins_the_next_report() {
        let (e, t0) = (endpoint(), Instant::now());
        let mut w = ExhaustedWindow::default();
        w.dead_lettered(&e, dead("evt_1"), t0, W);
        w.dead_lettered(&e, dead("evt_2"), t0 + W / 2, W);
        // `due` was not called at the window's end: the next dead letter carries both.
        let n = w.dead_lettered(&e, dead("evt_3"), t0 + W * 2, W).unwrap();
        assert_eq!((n.count, n.last_delivery_id.as_str()), (2, "evt_3"));
    }
}
