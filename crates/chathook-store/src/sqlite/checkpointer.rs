//! The checkpointer: copies the write-ahead log's committed pages into the database file on a thread
//! of its own. Left to SQLite, the commit that takes the log past `wal_autocheckpoint` pages does it
//! on the writer's thread, a fifth of the writer's time under load, while every caller waits on that
//! commit. PASSIVE checkpoints: the checkpointer never waits for the writer nor the writer for it; the
//! log is reused from its start once a checkpoint caught up with it.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

use crate::StoreError;

/// How often the checkpointer looks for committed pages to copy.
const INTERVAL: Duration = Duration::from_millis(100);

/// The running checkpointer; it stops when this is dropped (with the store).
pub(super) struct Checkpointer {
    /// Never sent on: dropping it ends the thread's wait.
    _stop: mpsc::Sender<()>,
}

/// Starts checkpointing the database at `path` (whose writer runs with `wal_autocheckpoint=0`).
pub(super) fn start(path: &Path) -> Result<Checkpointer, StoreError> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA busy_timeout=5000;")?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("chathook-checkpointer".into())
        .spawn(move || {
            // Until the store drops its end.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                if let Err(e) = done {
                    tracing::warn!(error = %e, "a checkpoint of the write-ahead log failed");
                }
            }
        })
        .map_err(|e| StoreError::Storage(format!("cannot start the checkpointer: {e}")))?;
    Ok(Checkpointer { _stop: stop })
}
