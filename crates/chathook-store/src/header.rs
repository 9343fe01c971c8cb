//! A message header as the stores keep it: one small integer of flag bits.

use chathook_events::MessageHeader;

/// `no_persist` 1, `red_dot` 2, `sync_once` 4.
pub(crate) fn header_bits(h: &MessageHeader) -> i64 {
    i64::from(h.no_persist) | i64::from(h.red_dot) << 1 | i64::from(h.sync_once) << 2
}

pub(crate) fn header_from_bits(bits: i64) -> MessageHeader {
    MessageHeader {
        no_persist: bits & 1 != 0,
        red_dot: bits & 2 != 0,
        sync_once: bits & 4 != 0,
    }
}
