//! The single writer: one thread owns the write connection and commits every queued job in one
//! transaction (group commit), so throughput is not capped by one fsync per write.
//!
//! A job runs inside its own savepoint: a job that fails rolls back alone and the others in the batch
//! still commit. Replies are sent only after the commit is durable. In-memory state (sequence numbers,
//! the id generator, the events written) is changed by a job only after its SQL succeeded, and the
//! cache is dropped when a commit fails. A durable commit's events go to the log's tail in memory
//! (`tail`) before the new head is announced, so a reader woken by the head finds them there.

use crate::tail::{weight, Tail};
use crate::WriterMetrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use chathook_events::{Event, LoggedEvent};
use rusqlite::{params, Connection};
use tokio::sync::{mpsc, watch};

use crate::{Snowflake, StoreError};

/// What a job hands back: called once with the commit's result.
pub(crate) type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A unit of work for the writer.
pub(crate) type Job = Box<dyn FnOnce(&mut WriteCtx<'_>) -> Reply + Send>;

/// State the writer keeps between commits.
pub(crate) struct WriterState {
    /// Last sequence number per (channel key, channel type), loaded on first use.
    pub seqs: HashMap<(String, u8), u64>,
    pub ids: Snowflake,
    /// The events written in the current batch, in position order, each with its weight in the
    /// tail: they go to the tail when the batch commits, and are dropped when it fails (a job that
    /// fails drops its own, `in_savepoint`). The newest one's position is the batch's new head.
    pub pending: Vec<(LoggedEvent, usize)>,
}

/// What a job may touch.
pub(crate) struct WriteCtx<'a> {
    pub conn: &'a Connection,
    pub state: &'a mut WriterState,
}

impl WriteCtx<'_> {
    /// Appends events to the log and keeps them for the tail; the position of the last one. A job
    /// that fails after this rolls back in its savepoint, which drops the kept events too
    /// (`in_savepoint`), and a commit that fails drops them all: the head moves only with a durable
    /// commit.
    pub fn log_events(&mut self, events: Vec<Event>) -> Result<Option<u64>, StoreError> {
        if events.is_empty() {
            return Ok(None);
        }
        let at_ms = now_ms();
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO events(at_ms, body) VALUES (?1, ?2)")?;
        let mut last = 0;
        for event in events {
            let body = super::event_body::encode(&event)?;
            stmt.execute(params![at_ms, body])?;
            last = self.conn.last_insert_rowid() as u64;
            let weight = weight(&event, body.len());
            let logged = LoggedEvent {
                position: last,
                at_ms,
                event,
            };
            self.state.pending.push((logged, weight));
        }
        Ok(Some(last))
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs `job` in a savepoint and turns its result into a reply for after the commit.
pub(crate) fn in_savepoint<R: Send + 'static>(
    ctx: &mut WriteCtx<'_>,
    job: impl FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    // Prepared once and cached like every other statement, not parsed again for each job.
    ctx.conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    let kept = ctx.state.pending.len();
    match job(ctx) {
        Ok(r) => {
            ctx.conn.prepare_cached("RELEASE job")?.execute([])?;
            Ok(r)
        }
        Err(e) => {
            ctx.state.pending.truncate(kept);
            if let Err(rollback) = ctx.conn.execute_batch("ROLLBACK TO job; RELEASE job") {
                tracing::error!(error = %rollback, "savepoint rollback failed");
            }
            Err(e)
        }
    }
}

/// The writer loop; runs on its own thread until every sender is dropped.
pub(crate) fn run(
    conn: Connection,
    mut state: WriterState,
    mut jobs: mpsc::Receiver<Job>,
    head: watch::Sender<u64>,
    tail: Arc<Tail>,
    max_batch: usize,
    metrics: WriterMetrics,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut replies: Vec<Reply> = Vec::with_capacity(max_batch);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics.jobs.inc_by(batch.len() as u64);
        let begun = conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(StoreError::from);
        if let Err(e) = begun {
            tracing::error!(error = %e, "cannot begin a write transaction");
            metrics.failed_commits.inc();
            // Dropping the jobs closes their reply channels: each caller gets `NotCommitted`.
            batch.clear();
            continue;
        }
        state.pending.clear();
        {
            let mut ctx = WriteCtx {
                conn: &conn,
                state: &mut state,
            };
            for job in batch.drain(..) {
                replies.push(job(&mut ctx));
            }
        }
        let committed = conn.execute_batch("COMMIT").map_err(StoreError::from);
        match &committed {
            Ok(()) => {
                metrics.commits.inc();
                if let Some((newest, _)) = state.pending.last() {
                    let newest = newest.position;
                    tail.keep(state.pending.drain(..));
                    head.send_replace(newest);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; the batch is rolled back");
                metrics.failed_commits.inc();
                let _ = conn.execute_batch("ROLLBACK");
                state.seqs.clear();
                state.pending.clear();
            }
        }
        for reply in replies.drain(..) {
            reply(committed.clone());
        }
    }
}
