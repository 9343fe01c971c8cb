//! Snowflake-style message ids: 41 bits of milliseconds, 10 bits of node id, 12 bits of sequence.

/// Milliseconds of 2024-01-01T00:00:00Z, the id epoch.
const EPOCH_MS: i64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;
const MAX_SEQ: i64 = (1 << SEQ_BITS) - 1;

/// Generates increasing, globally unique ids for one node. Not shared between threads: the store's
/// writer owns one, which is what makes ids increase in commit order.
#[derive(Debug)]
pub struct Snowflake {
    node: i64,
    last_ms: i64,
    seq: i64,
}

impl Snowflake {
    /// `node` is taken modulo 1024. `after` is an id already issued (e.g. the newest stored one): every
    /// new id is greater, even when the clock went back across a restart.
    pub fn new(node: u16, after: i64) -> Self {
        Snowflake {
            node: i64::from(node) & ((1 << NODE_BITS) - 1),
            last_ms: after >> (NODE_BITS + SEQ_BITS),
            seq: MAX_SEQ,
        }
    }

    /// The next id, given the current unix time in milliseconds.
    pub fn next_at(&mut self, now_ms: i64) -> i64 {
        let ms = (now_ms - EPOCH_MS).max(0);
        if ms > self.last_ms {
            self.last_ms = ms;
            self.seq = 0;
        } else if self.seq >= MAX_SEQ {
            // Borrow from the next millisecond rather than wait: ids stay unique and increasing.
            self.last_ms += 1;
            self.seq = 0;
        } else {
            self.seq += 1;
        }
        (self.last_ms << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS) | self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_within_one_millisecond_and_across_clock_steps_back() {
        let mut gen = Snowflake::new(3, 0);
        let now = EPOCH_MS + 10_000;
        let mut last = 0;
        for i in 0..10_000 {
            // the clock stands still, then goes back
            let t = if i < 5_000 { now } else { now - 5 };
            let id = gen.next_at(t);
            assert!(id > last, "id {id} after {last}");
            last = id;
        }
        let mut after_restart = Snowflake::new(3, last);
        assert!(after_restart.next_at(now - 1_000) > last);
    }

    #[test]
    fn node_id_is_encoded() {
        let mut gen = Snowflake::new(5, 0);
        let id = gen.next_at(EPOCH_MS + 1);
        assert_eq!((id >> SEQ_BITS) & 0x3ff, 5);
    }
}
