//! Turns: while a before-send hook judges a channel's messages, the channel's sends reach the store in
//! the order they arrived, so their seqs (and deliveries) follow send order even when an earlier
//! message waits longer for its verdict. Each send takes a turn on arrival, may wait for its verdict
//! concurrently with the others, then waits until the send before it has its seq, and lets the next
//! one go once it has its own (or gave up). Other channels never wait.

use dashmap::DashMap;
use futures_util::future::{FutureExt, Shared};
use tokio::sync::oneshot;

/// A channel: type and storage key.
type ChannelKey = (u8, String);

/// The newest turn of each channel with a send in progress.
#[derive(Default)]
pub(crate) struct Turns {
    tails: DashMap<ChannelKey, Shared<oneshot::Receiver<()>>>,
}

/// One send's place in its channel's line. Dropping it lets the next send go.
pub(crate) struct Turn<'a> {
    turns: &'a Turns,
    key: ChannelKey,
    /// Done when the send before this one has its seq (or gave up).
    before: Option<Shared<oneshot::Receiver<()>>>,
    /// This send's own signal, as the next send waits on it.
    mine: Shared<oneshot::Receiver<()>>,
    /// Dropped when this send has its seq: that wakes the next send.
    done: Option<oneshot::Sender<()>>,
}

impl Turns {
    /// Takes the next turn in `key`'s line.
    pub fn take(&self, key: ChannelKey) -> Turn<'_> {
        let (done, mine) = oneshot::channel();
        let mine = mine.shared();
        let before = self.tails.insert(key.clone(), mine.clone());
        Turn {
            turns: self,
            key,
            before,
            mine,
            done: Some(done),
        }
    }

    /// Channels with a send in progress.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.tails.len()
    }
}

impl Turn<'_> {
    /// Waits until every earlier send of the channel has its seq (or gave up).
    pub async fn wait(&mut self) {
        if let Some(before) = self.before.take() {
            let _ = before.await;
        }
    }

    /// Hands over the signal that lets the next send go, to be dropped the moment this send has its
    /// seq (on the store's writer thread).
    pub fn release_handle(&mut self) -> Option<oneshot::Sender<()>> {
        self.done.take()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // The last in line leaves no tail behind.
        let mine = &self.mine;
        self.turns
            .tails
            .remove_if(&self.key, |_, tail| tail.ptr_eq(mine));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[tokio::test]
    async fn sends_pass_in_arrival_order_whatever_their_verdicts_take() {
        // spawned sends hold their turns: the line must outlive them
        let turns: &'static Turns = Box::leak(Box::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, verdict_ms) in [(0u64, 60u64), (1, 0), (2, 30), (3, 0)] {
            // turns are taken in arrival order...
            let mut turn = turns.take((2, "g".into()));
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                // ...the verdicts come back in any order...
                tokio::time::sleep(Duration::from_millis(verdict_ms)).await;
                turn.wait().await;
                // ...and the sends reach the store in arrival order
                order.lock().unwrap().push(i);
                drop(turn.release_handle());
            }));
        }
        let other = turns.take((2, "other".into()));
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(turns.len(), 1, "only the channel still in use has a tail");
        drop(other);
        assert_eq!(turns.len(), 0);
    }

    #[tokio::test]
    async fn a_send_that_gives_up_lets_the_next_go() {
        let turns = Turns::default();
        let first = turns.take((1, "a@b".into()));
        let mut second = turns.take((1, "a@b".into()));
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), second.wait())
            .await
            .expect("not blocked by a send that gave up");
    }
}
