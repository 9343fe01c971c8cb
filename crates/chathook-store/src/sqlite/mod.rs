//! The embedded store: one SQLite file in WAL mode, a single writer thread with group commits
//! (`writer`), and a small pool of read connections used from `spawn_blocking`. Each storage trait is
//! implemented in a file of its own.

mod channels;
mod checkpointer;
mod client_keys;
mod cmd_queue;
mod conversations;
mod event_body;
mod event_log;
mod messages;
mod presence;
mod relay;
mod schema;
mod users;
mod webhook;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection};
use tokio::sync::{mpsc, oneshot, watch};

use chathook_events::Event;
use writer::{guarded, Guard, Job, WriteCtx, WriterState};

use crate::now_ms;

use crate::tail::Tail;
use crate::{Maintenance, Snowflake, StoreError, WriterMetrics};

/// Prepared statements the write connection keeps.
const WRITER_STATEMENTS: usize = 128;

/// The database file's name in the data directory.
pub const SQLITE_FILE: &str = "chathook.db";

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Directory that holds `chathook.db` ([`SQLITE_FILE`], created if missing).
    pub data_dir: PathBuf,
    /// Node id encoded in message ids.
    pub node_id: u16,
    /// Most jobs committed in one transaction.
    pub max_batch: usize,
    /// Jobs that may wait for the writer before callers wait for room.
    pub queue_capacity: usize,
    /// Most events the log's tail keeps in memory for readers that are caught up (0: none).
    pub tail_events: usize,
    /// Most bytes the log's tail keeps (each event weighs its stored body and its message's payload).
    pub tail_bytes: usize,
}

impl SqliteOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        SqliteOptions {
            data_dir: data_dir.into(),
            node_id: 1,
            max_batch: 2048,
            queue_capacity: 16_384,
            tail_events: 4096,
            tail_bytes: 16 << 20,
        }
    }
}

/// The embedded implementation of every storage trait.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: mpsc::Sender<Job>,
    head: watch::Receiver<u64>,
    readers: Mutex<Vec<Connection>>,
    /// The newest committed events, filled by the writer (`tail`).
    tail: Arc<Tail>,
    /// Stops with the store.
    _checkpointer: checkpointer::Checkpointer,
    metrics: WriterMetrics,
}

impl SqliteStore {
    /// Opens (or creates) the store and starts its writer thread.
    pub fn open(options: SqliteOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&options.data_dir)
            .map_err(|e| StoreError::Unwritable(format!("{}: {e}", options.data_dir.display())))?;
        let path = options.data_dir.join(SQLITE_FILE);
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;
             PRAGMA busy_timeout=5000; PRAGMA wal_autocheckpoint=0;",
        )?;
        // The writer runs every job's statements; the default cache (16) would evict some each batch.
        conn.set_prepared_statement_cache_capacity(WRITER_STATEMENTS);
        schema::migrate(&conn)?;
        // A read-only file or directory opens and reads fine; find out now, not at the first send.
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
        // Checkpoints run on their own thread, not in the writer's commits.
        let checkpointer = checkpointer::start(&path)?;
        let last_id: i64 = conn.query_row(
            "SELECT COALESCE(MAX(message_id), 0) FROM messages",
            [],
            |r| r.get(0),
        )?;
        let last_dedup_id: i64 = conn.query_row(
            "SELECT COALESCE(MAX(message_id), 0) FROM client_msg_keys",
            [],
            |r| r.get(0),
        )?;
        let head: i64 =
            conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
                r.get(0)
            })?;
        let head = head.max(schema::sequence_of(&conn, "events")?) as u64;
        let (head_tx, head_rx) = watch::channel(head);
        let (jobs_tx, jobs_rx) = mpsc::channel(options.queue_capacity.max(1));
        let state = WriterState {
            seqs: Default::default(),
            ids: Snowflake::new(options.node_id, last_id.max(last_dedup_id)),
            pending: Vec::new(),
        };
        let tail = Arc::new(Tail::new(options.tail_events, options.tail_bytes));
        let writer_tail = tail.clone();
        let metrics = WriterMetrics::default();
        let writer_metrics = metrics.clone();
        let max_batch = options.max_batch.max(1);
        std::thread::Builder::new()
            .name("chathook-writer".into())
            .spawn(move || {
                writer::run(
                    conn,
                    state,
                    jobs_rx,
                    head_tx,
                    writer_tail,
                    max_batch,
                    writer_metrics,
                )
            })
            .map_err(|e| StoreError::Storage(format!("cannot start the writer: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                jobs: jobs_tx,
                head: head_rx,
                readers: Mutex::new(Vec::new()),
                tail,
                _checkpointer: checkpointer,
                metrics,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The writer's counters.
    pub fn metrics(&self) -> WriterMetrics {
        self.inner.metrics.clone()
    }

    /// Runs `job` on the writer inside its own savepoint and waits for the durable commit.
    async fn write<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.write_guarded(Guard::Savepoint, job).await
    }

    /// Runs `job` on the writer as `guard` says and waits for the durable commit.
    async fn write_guarded<R: Send + 'static>(
        &self,
        guard: Guard,
        job: impl FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        let boxed: Job = Box::new(move |ctx| {
            let result = guarded(ctx, guard, job);
            Box::new(move |committed| {
                let _ = tx.send(committed.and(result));
            })
        });
        self.inner
            .jobs
            .send(boxed)
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await
            .map_err(|_| StoreError::Unwritable("the write transaction could not begin".into()))?
    }

    /// Runs `job` like [`Self::write`]; the events it returns go to the log in the same savepoint, so
    /// they commit with its rows or not at all (as PostgreSQL's jobs return theirs).
    async fn write_logged<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut WriteCtx<'_>) -> Result<(R, Vec<Event>), StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.write_logged_guarded(Guard::Savepoint, job).await
    }

    /// [`Self::write_logged`] as `guard` says.
    async fn write_logged_guarded<R: Send + 'static>(
        &self,
        guard: Guard,
        job: impl FnOnce(&mut WriteCtx<'_>) -> Result<(R, Vec<Event>), StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.write_guarded(guard, move |ctx| {
            let (result, events) = job(ctx)?;
            ctx.log_events(events)?;
            Ok(result)
        })
        .await
    }

    /// Runs `f` on a pooled read connection off the async threads.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => {
                    let c = Connection::open(&inner.path)?;
                    c.execute_batch("PRAGMA busy_timeout=5000;")?;
                    c
                }
            };
            let result = f(&conn);
            if let Ok(mut pool) = inner.readers.lock() {
                if pool.len() < 8 {
                    pool.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Storage(format!("read task failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl Maintenance for SqliteStore {
    async fn prune(
        &self,
        dedup_window_secs: u64,
        event_retention_ms: i64,
    ) -> Result<(usize, usize), StoreError> {
        let tail = self.inner.tail.clone();
        self.write(move |ctx| {
            let now = now_ms();
            let keys = client_keys::prune(ctx.conn, now / 1000, dedup_window_secs)?;
            let min_acked: Option<i64> = ctx.conn.query_row(
                "SELECT MIN(position) FROM consumers WHERE holds = 1",
                [],
                |r| r.get(0),
            )?;
            // One pass: each deleted position comes back, to count them and find the newest.
            let mut delete = ctx.conn.prepare(
                "DELETE FROM events WHERE at_ms < ?1 AND position <= ?2 RETURNING position",
            )?;
            let bounds = params![now - event_retention_ms, min_acked.unwrap_or(i64::MAX)];
            let (mut events, mut newest_pruned) = (0, None);
            for position in delete.query_map(bounds, |r| r.get::<_, i64>(0))? {
                events += 1;
                newest_pruned = newest_pruned.max(Some(position? as u64));
            }
            // The tail answers no read the log no longer would (forgotten even if this commit
            // fails: the tail is only a shortcut to the log).
            if let Some(newest) = newest_pruned {
                tail.forget_through(newest);
            }
            Ok((keys, events))
        })
        .await
    }

    fn writer_metrics(&self) -> WriterMetrics {
        self.metrics()
    }

    fn describe(&self) -> String {
        self.path().display().to_string()
    }
}
