//! The checkpointer: copies committed WAL pages into the database file on its own thread and
//! connection, so the writer's commits never pay for a checkpoint (SQLite's automatic checkpoint runs
//! inside the commit that crosses the threshold, on the writer's critical path).
//!
//! It only runs PASSIVE checkpoints: it never blocks the writer or a reader, and a checkpoint that a
//! long reader holds back is simply finished by a later one. The writer nudges it after each commit;
//! it checkpoints at most once per `interval`, and once more when the writer stops.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::StoreError;

/// How often, at most, a checkpoint runs while commits keep coming.
const INTERVAL: Duration = Duration::from_millis(200);

/// Starts the checkpointer for the database at `path`; returns the nudge the writer sends after a
/// commit. The thread ends (after a last checkpoint) when the nudge's sender is dropped.
pub(crate) fn start(path: &Path) -> Result<SyncSender<()>, StoreError> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA busy_timeout=5000; PRAGMA wal_autocheckpoint=0;")?;
    let (nudge, nudged) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("chathook-ckpt".into())
        .spawn(move || run(conn, nudged))
        .map_err(|e| StoreError::Storage(format!("cannot start the checkpointer: {e}")))?;
    Ok(nudge)
}

fn run(conn: Connection, nudged: Receiver<()>) {
    let mut failing = false;
    let mut pending = false;
    let mut last = Instant::now();
    loop {
        let wait = if pending {
            INTERVAL.saturating_sub(last.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        match nudged.recv_timeout(wait) {
            Ok(()) => pending = true,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                checkpoint(&conn, &mut failing);
                return;
            }
        }
        if pending && last.elapsed() >= INTERVAL {
            checkpoint(&conn, &mut failing);
            pending = false;
            last = Instant::now();
        }
    }
}

/// One PASSIVE checkpoint; a failure (a full disk, say) is logged once until one succeeds again.
fn checkpoint(conn: &Connection, failing: &mut bool) {
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        Ok(()) => {
            if *failing {
                tracing::info!("WAL checkpoints succeed again");
            }
            *failing = false;
        }
        Err(e) => {
            if !*failing {
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying after the next commit");
            }
            *failing = true;
        }
    }
}
