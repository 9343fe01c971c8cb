//! The single writer: one thread owns the write connection and commits every queued job in one
//! transaction (group commit), so throughput is not capped by one fsync per write.
//!
//! A job runs inside its own savepoint: a job that fails rolls back alone and the others in the batch
//! still commit. A job whose input was validated before it writes (a message append) may run without
//! one ([`Guard::Batch`]), sparing the copy of every page it touches into the statement journal: it
//! can then fail only when storage does, and its failure rolls the whole batch back (every job of it
//! is answered with the error, as when the commit fails). Replies are sent only after the commit is
//! durable. In-memory state (sequence numbers, the id generator, the events written) is changed by a
//! job only after its SQL succeeded, and the cache is dropped when a commit fails. A durable commit's
//! events go to the log's tail in memory (`tail`) before the new head is announced, so a reader woken
//! by the head finds them there.

use crate::now_ms;
use crate::tail::{weight, Tail};
use crate::WriterMetrics;
use std::collections::HashMap;
use std::sync::Arc;

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
    /// The error of a job that ran without a savepoint and failed: its partial writes cannot be
    /// undone alone, so the batch is rolled back instead of committed.
    pub spoiled: Option<StoreError>,
}

/// What a failing job takes down with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    /// Only itself: it runs in a savepoint.
    Savepoint,
    /// Its whole batch: no savepoint (for jobs validated before they write).
    Batch,
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

/// Runs `job` as `guard` says.
pub(crate) fn guarded<R: Send + 'static>(
    ctx: &mut WriteCtx<'_>,
    guard: Guard,
    job: impl FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    match guard {
        Guard::Savepoint => in_savepoint(ctx, job),
        Guard::Batch => {
            let result = job(ctx);
            if let Err(e) = &result {
                ctx.spoiled.get_or_insert_with(|| e.clone());
            }
            result
        }
    }
}

/// Runs `job` in a savepoint and turns its result into a reply for after the commit.
fn in_savepoint<R: Send + 'static>(
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
        let spoiled = {
            let mut ctx = WriteCtx {
                conn: &conn,
                state: &mut state,
                spoiled: None,
            };
            for job in batch.drain(..) {
                replies.push(job(&mut ctx));
            }
            ctx.spoiled
        };
        let committed = match spoiled {
            None => conn.execute_batch("COMMIT").map_err(StoreError::from),
            // A job without a savepoint failed: nothing of the batch may commit.
            Some(e) => Err(e),
        };
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
                tracing::error!(error = %e, "the batch failed and is rolled back");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `batches` through a writer (each batch queued whole before the writer starts on it);
    /// each job's answer, and the rows of `t` at the end.
    fn run_batches(batches: Vec<Vec<(Guard, i64, bool)>>) -> (Vec<Vec<bool>>, Vec<i64>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER NOT NULL)")
            .unwrap();
        let mut answers = Vec::new();
        for batch in batches {
            let (jobs_tx, jobs_rx) = mpsc::channel(16);
            let (answer_tx, answer_rx) = std::sync::mpsc::channel();
            let size = batch.len();
            for (i, (guard, x, fails)) in batch.into_iter().enumerate() {
                let answer = answer_tx.clone();
                let job: Job = Box::new(move |ctx| {
                    let result = guarded(ctx, guard, |ctx| {
                        ctx.conn.execute("INSERT INTO t(x) VALUES (?1)", [x])?;
                        match fails {
                            true => Err(StoreError::Storage("the job fails".into())),
                            false => Ok(()),
                        }
                    });
                    Box::new(move |committed| {
                        let _ = answer.send((i, committed.and(result).is_ok()));
                    })
                });
                jobs_tx.try_send(job).unwrap();
            }
            drop(jobs_tx);
            let conn = Connection::open(&path).unwrap();
            let state = WriterState {
                seqs: HashMap::new(),
                ids: Snowflake::new(1, 0),
                pending: Vec::new(),
            };
            let (head, _) = watch::channel(0);
            let tail = Arc::new(Tail::new(0, 0));
            run(
                conn,
                state,
                jobs_rx,
                head,
                tail,
                16,
                WriterMetrics::default(),
            );
            let mut got: Vec<(usize, bool)> = answer_rx.try_iter().collect();
            got.sort();
            assert_eq!(got.len(), size);
            answers.push(got.into_iter().map(|(_, ok)| ok).collect());
        }
        let conn = Connection::open(&path).unwrap();
        let mut stmt = conn.prepare("SELECT x FROM t ORDER BY x").unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        (answers, rows.map(Result::unwrap).collect())
    }

    #[test]
    fn a_failing_job_in_a_savepoint_fails_alone() {
        use Guard::*;
        let (answers, rows) = run_batches(vec![vec![
            (Savepoint, 1, false),
            (Savepoint, 2, true),
            (Batch, 3, false),
        ]]);
        assert_eq!(answers, [[true, false, true]]);
        assert_eq!(rows, [1, 3]);
    }

    #[test]
    fn a_failing_job_without_a_savepoint_rolls_its_whole_batch_back() {
        use Guard::*;
        let (answers, rows) = run_batches(vec![
            vec![
                (Savepoint, 1, false),
                (Batch, 2, true),
                (Savepoint, 3, false),
            ],
            // the next batch is not touched by it
            vec![(Batch, 4, false)],
        ]);
        assert_eq!(answers, [vec![false, false, false], vec![true]]);
        assert_eq!(rows, [4]);
    }
}
