//! An endpoint's place in the event log: how far it has read, which read events are still being
//! delivered, and how far its durable cursor may move. The cursor only passes events that were
//! delivered or parked for retry, so a crash redelivers the rest.

use std::collections::BTreeSet;

/// Positions of one endpoint in the event log. Invariant: `acked <= read_pos`, and every position in
/// `outstanding` lies in `(acked, read_pos]`.
#[derive(Debug)]
pub(crate) struct Cursor {
    /// The last position read from the log (selected or not).
    pub read_pos: u64,
    /// The last position durably acknowledged (the consumer's cursor in the store).
    pub acked: u64,
    /// Read positions whose delivery has not ended (neither delivered nor parked).
    outstanding: BTreeSet<u64>,
}

impl Cursor {
    /// A cursor that has handled everything up to `acked`.
    pub fn new(acked: u64) -> Cursor {
        Cursor {
            read_pos: acked,
            acked,
            outstanding: BTreeSet::new(),
        }
    }

    /// `position` was read (it may or may not be selected).
    pub fn read(&mut self, position: u64) {
        self.read_pos = self.read_pos.max(position);
    }

    /// `position` was read and must be delivered before the cursor passes it.
    pub fn hold(&mut self, position: u64) {
        self.read(position);
        self.outstanding.insert(position);
    }

    /// The delivery of `positions` ended (delivered, parked, or given back to the log).
    pub fn release(&mut self, positions: &[u64]) {
        for p in positions {
            self.outstanding.remove(p);
        }
    }

    /// Reads again from just after `position` (events up to the old read position come again).
    pub fn rewind_to(&mut self, position: u64) {
        self.read_pos = position.max(self.acked);
    }

    /// Skips to `position`, treating everything up to it as handled (events no longer stored).
    pub fn skip_to(&mut self, position: u64) {
        self.read_pos = self.read_pos.max(position);
        self.outstanding.retain(|p| *p > position);
    }

    /// The position the durable cursor may move to now, if it is beyond `acked`.
    pub fn ack_candidate(&self) -> Option<u64> {
        let candidate = match self.outstanding.first() {
            Some(p) => p - 1,
            None => self.read_pos,
        }
        .min(self.read_pos);
        (candidate > self.acked).then_some(candidate)
    }

    /// The durable cursor moved to `position`.
    pub fn acked(&mut self, position: u64) {
        self.acked = self.acked.max(position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_stops_before_the_oldest_delivery_in_flight() {
        let mut c = Cursor::new(10);
        assert_eq!(c.ack_candidate(), None);
        c.read(11);
        c.hold(12);
        c.hold(13);
        c.read(14);
        assert_eq!(c.ack_candidate(), Some(11));
        c.release(&[13]);
        assert_eq!(c.ack_candidate(), Some(11), "12 is still in flight");
        c.release(&[12]);
        assert_eq!(c.ack_candidate(), Some(14));
        c.acked(14);
        assert_eq!(c.ack_candidate(), None);
    }

    #[test]
    fn a_rewind_reads_again_but_never_before_the_durable_cursor() {
        let mut c = Cursor::new(5);
        c.hold(6);
        c.hold(7);
        c.release(&[6, 7]);
        c.rewind_to(5);
        assert_eq!(c.read_pos, 5);
        c.rewind_to(2);
        assert_eq!(c.read_pos, 5);
    }

    #[test]
    fn a_skip_passes_a_gap() {
        let mut c = Cursor::new(3);
        c.skip_to(100);
        assert_eq!(c.ack_candidate(), Some(100));
    }
}
