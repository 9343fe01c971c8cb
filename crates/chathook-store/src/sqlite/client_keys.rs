//! The de-duplication keys of the embedded store: each sender's `client_msg_no`s of the last window,
//! so that a key sent again within `dedup_window_secs` returns the first message.
//!
//! Keyed by time bucket first (`bucket` = the start, in unix seconds, of the window-wide slice of
//! time the key was claimed in), so that the table needs no second index: a claim probes the current
//! bucket (its primary key) and the previous one (a point lookup), and pruning is a range delete on
//! the primary key. A key lives one to two windows; a key in the previous bucket counts only while it
//! is younger than the window, so the window is exact whatever the buckets.

use rusqlite::{params, Connection};

use crate::StoreError;

/// The first message of a key sent again within the window.
pub(super) struct FirstMessage {
    pub message_id: i64,
    pub message_seq: u64,
}

/// The width of a bucket: the window (at least a second).
fn width(window_secs: u64) -> i64 {
    window_secs.clamp(1, i64::MAX as u64) as i64
}

/// The start of the bucket that `now` (unix seconds) falls in.
fn bucket(now: i64, window_secs: u64) -> i64 {
    let width = width(window_secs);
    now.div_euclid(width) * width
}

/// Claims `(from_uid, client_msg_no)` for a new message, unless the key was claimed within the
/// window: then the first message. One statement in the common case (claimed).
pub(super) fn claim(
    conn: &Connection,
    from_uid: &str,
    client_msg_no: &str,
    now: i64,
    window_secs: u64,
    message_id: i64,
    message_seq: u64,
) -> Result<Option<FirstMessage>, StoreError> {
    let current = bucket(now, window_secs);
    let previous = current - width(window_secs);
    let cutoff = now.saturating_sub(window_secs.min(i64::MAX as u64) as i64);
    // A key in the current bucket is always within the window; one in the previous bucket only if
    // it is young enough.
    let claimed = conn
        .prepare_cached(
            "INSERT INTO client_msg_keys(bucket, from_uid, client_msg_no, created_at, message_id, message_seq)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE NOT EXISTS (
               SELECT 1 FROM client_msg_keys
               WHERE bucket = ?7 AND from_uid = ?2 AND client_msg_no = ?3 AND created_at >= ?8)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            current,
            from_uid,
            client_msg_no,
            now,
            message_id,
            message_seq as i64,
            previous,
            cutoff
        ])?;
    if claimed == 1 {
        return Ok(None);
    }
    let first = conn
        .prepare_cached(
            "SELECT message_id, message_seq FROM client_msg_keys
             WHERE bucket IN (?1, ?2) AND from_uid = ?3 AND client_msg_no = ?4 AND created_at >= ?5
             ORDER BY created_at LIMIT 1",
        )?
        .query_row(
            params![current, previous, from_uid, client_msg_no, cutoff],
            |r| {
                Ok(FirstMessage {
                    message_id: r.get(0)?,
                    message_seq: r.get::<_, i64>(1)? as u64,
                })
            },
        )?;
    Ok(Some(first))
}

/// Deletes the keys no claim at `now` can find any more (every bucket before the previous one);
/// how many.
pub(super) fn prune(conn: &Connection, now: i64, window_secs: u64) -> Result<usize, StoreError> {
    let previous = bucket(now, window_secs) - width(window_secs);
    Ok(conn
        .prepare_cached("DELETE FROM client_msg_keys WHERE bucket < ?1")?
        .execute(params![previous])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&conn).unwrap();
        conn
    }

    fn first(found: Option<FirstMessage>) -> Option<i64> {
        found.map(|f| f.message_id)
    }

    #[test]
    fn a_key_sent_again_within_the_window_returns_the_first_message() {
        let conn = store();
        assert_eq!(
            first(claim(&conn, "u", "k", 1_000, 100, 1, 1).unwrap()),
            None
        );
        assert_eq!(
            first(claim(&conn, "u", "k", 1_050, 100, 2, 2).unwrap()),
            Some(1)
        );
        // another sender's key is another key
        assert_eq!(
            first(claim(&conn, "v", "k", 1_050, 100, 3, 3).unwrap()),
            None
        );
    }

    #[test]
    fn the_window_is_exact_across_buckets() {
        let conn = store();
        // claimed at 1_090 (bucket 1_000); at 1_150 (bucket 1_100) it is 60 s old: a duplicate
        claim(&conn, "u", "k", 1_090, 100, 1, 1).unwrap();
        assert_eq!(
            first(claim(&conn, "u", "k", 1_150, 100, 2, 2).unwrap()),
            Some(1)
        );
        // claimed at 1_010 (bucket 1_000); at 1_150 it is 140 s old: new again
        claim(&conn, "u", "j", 1_010, 100, 3, 3).unwrap();
        assert_eq!(
            first(claim(&conn, "u", "j", 1_150, 100, 4, 4).unwrap()),
            None
        );
        // and the new claim holds from then on
        assert_eq!(
            first(claim(&conn, "u", "j", 1_160, 100, 5, 5).unwrap()),
            Some(4)
        );
    }

    #[test]
    fn a_zero_window_dedups_only_within_the_same_second() {
        let conn = store();
        claim(&conn, "u", "k", 1_000, 0, 1, 1).unwrap();
        assert_eq!(
            first(claim(&conn, "u", "k", 1_000, 0, 2, 2).unwrap()),
            Some(1)
        );
        assert_eq!(first(claim(&conn, "u", "k", 1_001, 0, 3, 3).unwrap()), None);
    }

    #[test]
    fn pruning_deletes_the_buckets_no_claim_can_find() {
        let conn = store();
        claim(&conn, "u", "a", 950, 100, 1, 1).unwrap(); // bucket 900
        claim(&conn, "u", "b", 1_050, 100, 2, 2).unwrap(); // bucket 1_000
        claim(&conn, "u", "c", 1_150, 100, 3, 3).unwrap(); // bucket 1_100
        assert_eq!(prune(&conn, 1_150, 100).unwrap(), 1);
        assert_eq!(
            first(claim(&conn, "u", "b", 1_150, 100, 4, 4).unwrap()),
            Some(2)
        );
    }
}
