//! Delivery in seq order: every connection receives a channel's messages in strictly increasing
//! `message_seq`, however the sends that made them finish.
//!
//! The store's writer gives a channel's messages their seqs, and commits them, in order; but each send
//! then resumes on its own task, so two sends committed together can reach fan-out in either order. The
//! [`Sequencer`] restores the order: the writer announces each seq as it assigns it ([`Sequencer::expect`],
//! called from the events closure, which runs on the writer thread in seq order), and each send hands its
//! fan-out in after the commit ([`Sequencer::finish`]); a fan-out whose predecessor has not been handed
//! in yet waits for it. A failed commit hands in nothing for its seq ([`Sequencer::abandon`]), so its
//! successors are not held.
//!
//! No global lock: one entry per channel with sends in flight, in a sharded map, removed once the
//! channel has nothing outstanding. Fan-outs are run by the caller after the entry's lock is released.

use std::collections::BTreeMap;

use dashmap::DashMap;

/// A channel: its type and storage key.
pub type ChannelKey = (u8, String);

/// The order state of one channel with sends in flight.
struct ChannelOrder<T> {
    /// The next seq to release; every lower seq announced since the entry was made is released.
    next: u64,
    /// Seqs announced and not yet handed in (finished or abandoned).
    outstanding: usize,
    /// Handed in before their predecessors, by seq (`None`: abandoned, nothing to deliver).
    waiting: BTreeMap<u64, Option<T>>,
    /// Released while another task was delivering this channel: that task delivers them next.
    ready: Vec<T>,
    /// A task is delivering this channel's released fan-outs; only it delivers, so they keep their
    /// order even though the delivery runs outside the map's lock.
    delivering: bool,
}

impl<T> ChannelOrder<T> {
    fn idle(&self) -> bool {
        self.outstanding == 0
            && self.waiting.is_empty()
            && self.ready.is_empty()
            && !self.delivering
    }
}

/// What the caller must deliver now, in this order; then it asks [`Sequencer::delivered`] for more.
pub enum Released<T> {
    Nothing,
    One(T),
    Many(Vec<T>),
}

impl<T> Released<T> {
    pub fn is_empty(&self) -> bool {
        match self {
            Released::Nothing => true,
            Released::One(_) => false,
            Released::Many(v) => v.is_empty(),
        }
    }
}

impl<T> IntoIterator for Released<T> {
    type Item = T;
    type IntoIter = std::iter::Chain<std::option::IntoIter<T>, std::vec::IntoIter<T>>;

    fn into_iter(self) -> Self::IntoIter {
        match self {
            Released::Nothing => None.into_iter().chain(Vec::new()),
            Released::One(t) => Some(t).into_iter().chain(Vec::new()),
            Released::Many(v) => None.into_iter().chain(v),
        }
    }
}

/// Holds back fan-outs that finished before an earlier seq of the same channel.
pub struct Sequencer<T> {
    channels: DashMap<ChannelKey, ChannelOrder<T>>,
}

impl<T> Default for Sequencer<T> {
    fn default() -> Self {
        Sequencer {
            channels: DashMap::new(),
        }
    }
}

impl<T> Sequencer<T> {
    /// The writer assigned `seq` in `channel` (called in seq order per channel).
    pub fn expect(&self, channel: &ChannelKey, seq: u64) {
        if let Some(mut order) = self.channels.get_mut(channel) {
            // A failed commit's seqs are given again: start over from them.
            if order.outstanding == 0 && order.waiting.is_empty() {
                order.next = seq;
            }
            order.outstanding += 1;
            return;
        }
        self.channels.insert(
            channel.clone(),
            ChannelOrder {
                next: seq,
                outstanding: 1,
                waiting: BTreeMap::new(),
                ready: Vec::new(),
                delivering: false,
            },
        );
    }

    /// `seq` committed. Returns what the caller must deliver now, in order (this fan-out and the ones
    /// that were waiting for it), after which it calls [`Sequencer::delivered`] until that returns
    /// nothing; or nothing, when an earlier seq is outstanding or another task is delivering (which
    /// then delivers these too).
    pub fn finish(&self, channel: &ChannelKey, seq: u64, item: T) -> Released<T> {
        self.hand_in(channel, seq, Some(item))
    }

    /// `seq`'s commit failed: nothing of it is delivered, and its successors are not held for it.
    /// The result is as [`Sequencer::finish`]'s.
    pub fn abandon(&self, channel: &ChannelKey, seq: u64) -> Released<T> {
        self.hand_in(channel, seq, None)
    }

    /// The caller delivered what it was given: the fan-outs released meanwhile, or nothing (and the
    /// caller is no longer this channel's deliverer).
    pub fn delivered(&self, channel: &ChannelKey) -> Released<T> {
        let Some(mut order) = self.channels.get_mut(channel) else {
            return Released::Nothing;
        };
        if !order.ready.is_empty() {
            return Released::Many(std::mem::take(&mut order.ready));
        }
        order.delivering = false;
        let idle = order.idle();
        drop(order);
        if idle {
            self.channels.remove_if(channel, |_, o| o.idle());
        }
        Released::Nothing
    }

    /// Channels with sends in flight.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.channels.len()
    }

    fn hand_in(&self, channel: &ChannelKey, seq: u64, item: Option<T>) -> Released<T> {
        let Some(mut guard) = self.channels.get_mut(channel) else {
            // Never announced (not expected to happen): deliver as it comes.
            return item.map_or(Released::Nothing, Released::One);
        };
        let released = release(&mut guard, seq, item);
        let idle = guard.idle();
        drop(guard);
        if idle {
            self.channels.remove_if(channel, |_, o| o.idle());
        }
        released
    }
}

/// Hands `seq` in to `order` and returns what its caller must deliver now (see [`Sequencer::finish`]).
fn release<T>(order: &mut ChannelOrder<T>, seq: u64, item: Option<T>) -> Released<T> {
    order.outstanding = order.outstanding.saturating_sub(1);
    if seq > order.next {
        order.waiting.insert(seq, item);
        return Released::Nothing;
    }
    if seq == order.next {
        order.next += 1;
    }
    // The common case: nobody delivering, nothing queued, no successor waiting.
    if !order.delivering && order.ready.is_empty() && !order.waiting.contains_key(&order.next) {
        return match item {
            Some(t) => {
                order.delivering = true;
                Released::One(t)
            }
            None => Released::Nothing,
        };
    }
    // After what is already queued for the deliverer: this one (a stale seq is released as it
    // comes), then its waiting successors.
    order.ready.extend(item);
    while let Some(next) = order.waiting.remove(&order.next) {
        order.next += 1;
        order.ready.extend(next);
    }
    if order.delivering || order.ready.is_empty() {
        return Released::Nothing;
    }
    order.delivering = true;
    Released::Many(std::mem::take(&mut order.ready))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> ChannelKey {
        (2, "g".to_string())
    }

    /// Delivers as a caller does: what it is given, then what `delivered` adds until nothing.
    fn deliver(s: &Sequencer<u64>, channel: &ChannelKey, first: Released<u64>) -> Vec<u64> {
        let mut out: Vec<u64> = first.into_iter().collect();
        if out.is_empty() {
            return out;
        }
        loop {
            let more: Vec<u64> = s.delivered(channel).into_iter().collect();
            if more.is_empty() {
                return out;
            }
            out.extend(more);
        }
    }

    #[test]
    fn a_send_that_finishes_first_waits_for_its_predecessors() {
        let (s, g) = (Sequencer::default(), group());
        for seq in 1..=3 {
            s.expect(&g, seq);
        }
        assert!(deliver(&s, &g, s.finish(&g, 3, 3)).is_empty());
        assert!(deliver(&s, &g, s.finish(&g, 2, 2)).is_empty());
        assert_eq!(deliver(&s, &g, s.finish(&g, 1, 1)), vec![1, 2, 3]);
        assert_eq!(s.tracked(), 0, "an idle channel is forgotten");
        // the next send starts a fresh entry at its own seq
        s.expect(&g, 4);
        assert_eq!(deliver(&s, &g, s.finish(&g, 4, 4)), vec![4]);
    }

    #[test]
    fn fan_outs_released_during_a_delivery_go_to_the_deliverer_in_order() {
        let (s, g) = (Sequencer::default(), group());
        for seq in 1..=3 {
            s.expect(&g, seq);
        }
        let first: Vec<u64> = s.finish(&g, 1, 1).into_iter().collect();
        assert_eq!(first, vec![1], "this task delivers");
        // while it delivers, later seqs finish on other tasks: they must not overtake it
        assert!(s.finish(&g, 3, 3).is_empty());
        assert!(s.finish(&g, 2, 2).is_empty());
        assert_eq!(s.delivered(&g).into_iter().collect::<Vec<_>>(), vec![2, 3]);
        assert!(s.delivered(&g).is_empty());
        assert_eq!(s.tracked(), 0);
        // in order this time: each joins the queue behind the ones before it
        for seq in 4..=6 {
            s.expect(&g, seq);
        }
        assert_eq!(s.finish(&g, 4, 4).into_iter().collect::<Vec<_>>(), vec![4]);
        assert!(s.finish(&g, 5, 5).is_empty());
        assert!(s.finish(&g, 6, 6).is_empty());
        assert_eq!(s.delivered(&g).into_iter().collect::<Vec<_>>(), vec![5, 6]);
        assert!(s.delivered(&g).is_empty());
    }

    #[test]
    fn an_abandoned_seq_does_not_hold_its_successors_and_is_given_again() {
        let (s, g) = (Sequencer::default(), group());
        s.expect(&g, 5);
        s.expect(&g, 6);
        assert!(deliver(&s, &g, s.finish(&g, 6, 6)).is_empty());
        assert_eq!(deliver(&s, &g, s.abandon(&g, 5)), vec![6]);
        // after a failed batch, the writer gives the same seqs again
        s.expect(&g, 7);
        s.expect(&g, 8);
        assert!(deliver(&s, &g, s.abandon(&g, 8)).is_empty());
        assert!(deliver(&s, &g, s.abandon(&g, 7)).is_empty());
        s.expect(&g, 7);
        assert_eq!(deliver(&s, &g, s.finish(&g, 7, 7)), vec![7]);
    }

    #[test]
    fn channels_are_independent() {
        let (s, g) = (Sequencer::default(), group());
        let person = (1, "a@b".to_string());
        s.expect(&g, 1);
        s.expect(&person, 1);
        s.expect(&g, 2);
        assert!(deliver(&s, &g, s.finish(&g, 2, 2)).is_empty());
        assert_eq!(deliver(&s, &person, s.finish(&person, 1, 10)), vec![10]);
        assert_eq!(deliver(&s, &g, s.finish(&g, 1, 1)), vec![1, 2]);
    }
}
