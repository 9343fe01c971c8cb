//! The writer of one node: one task takes whatever writes are queued and commits them in one
//! transaction (group commit): the group's message appends together, in a fixed number of statements
//! (`appends`), then each other job in a savepoint so that a failing job fails alone. The events
//! the jobs produce are appended at the end, under the lock of the event log's head row, so positions
//! are gap-free and committed in order across nodes; the commit notifies the other nodes of the new
//! head. After the commit, its observer (the cluster's relay) sees the events with their positions,
//! then the callers are answered.

use std::sync::{Arc, OnceLock};

use chathook_events::Event;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::Transaction;

use super::pg_error;
use crate::{CommitObserver, Committed, StoreError, WriterMetrics};

/// The channel a commit notifies with the new head.
pub(super) const HEAD_CHANNEL: &str = "chathook_event_log";

/// A write: runs in the group's transaction and returns the events it causes (appended in the same
/// commit).
pub(super) type Work = Box<
    dyn for<'t> FnOnce(&'t Transaction<'t>) -> BoxFuture<'t, Result<Vec<Event>, StoreError>> + Send,
>;

/// What a queued write does.
pub(super) enum Task {
    Work(Work),
    /// A message append, done with the group's other appends.
    Append(super::appends::Append),
}

/// A queued write and where its answer goes: the position of its last event (the head when it made
/// none).
pub(super) struct Job {
    pub task: Task,
    pub done: oneshot::Sender<Result<u64, StoreError>>,
}

/// Commits queued jobs, a group per transaction, until every sender is gone.
pub(super) async fn run(
    pool: deadpool_postgres::Pool,
    mut queue: mpsc::Receiver<Job>,
    head: Arc<watch::Sender<u64>>,
    metrics: WriterMetrics,
    observer: Arc<OnceLock<CommitObserver>>,
    ids: Arc<std::sync::Mutex<crate::Snowflake>>,
    max_group: usize,
) {
    let mut group = Vec::with_capacity(max_group);
    while let Some(first) = queue.recv().await {
        group.push(first);
        while group.len() < max_group {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (tasks, answers): (Vec<Task>, Vec<_>) =
            group.drain(..).map(|j| (j.task, j.done)).unzip();
        let jobs = tasks.len() as u64;
        match commit(&pool, tasks, &ids).await {
            Ok((outcomes, committed)) => {
                metrics.commits.inc();
                metrics.jobs.inc_by(jobs);
                if let Some(newest) = outcomes.iter().flatten().max() {
                    head.send_if_modified(|h| raise(h, *newest));
                }
                // The observer first: whoever is answered finds the commit already observed.
                if let (Some(committed), Some(observe)) = (committed, observer.get()) {
                    observe(&committed);
                }
                for (done, outcome) in answers.into_iter().zip(outcomes) {
                    let _ = done.send(outcome);
                }
            }
            Err(e) => {
                metrics.failed_commits.inc();
                tracing::error!(error = %e, "commit failed; the group is rolled back");
                for done in answers {
                    let _ = done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Runs every job in one transaction and appends their events; each job's outcome, and the events
/// appended (when there are any).
async fn commit(
    pool: &deadpool_postgres::Pool,
    tasks: Vec<Task>,
    ids: &std::sync::Mutex<crate::Snowflake>,
) -> Result<(Vec<Result<u64, StoreError>>, Option<Committed>), StoreError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| StoreError::Storage(format!("PostgreSQL connection: {e}")))?;
    let mut tx = client.transaction().await.map_err(pg_error)?;
    let mut produced: Vec<Option<Result<Vec<Event>, StoreError>>> =
        (0..tasks.len()).map(|_| None).collect();
    let mut works = Vec::new();
    let (mut appending, mut appends) = (Vec::new(), Vec::new());
    // The stored messages' notes, for the observer.
    let mut notes = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task {
            Task::Work(work) => works.push((i, work)),
            Task::Append(append) => {
                appending.push(i);
                appends.push(append);
            }
        }
    }
    if !appends.is_empty() && works.is_empty() {
        // Only appends: nothing else in the group to keep when they fail, so no savepoint.
        let all = super::appends::append_all(&tx, ids, appends).await?;
        for (i, events) in appending.into_iter().zip(all.events) {
            produced[i] = Some(Ok(events));
        }
        notes = all.notes;
    } else if !appends.is_empty() {
        let savepoint = tx.savepoint("appends").await.map_err(pg_error)?;
        match super::appends::append_all(&savepoint, ids, appends).await {
            Ok(all) => {
                savepoint.commit().await.map_err(pg_error)?;
                for (i, events) in appending.into_iter().zip(all.events) {
                    produced[i] = Some(Ok(events));
                }
                notes = all.notes;
            }
            Err(e) => {
                savepoint.rollback().await.map_err(pg_error)?;
                for i in appending {
                    produced[i] = Some(Err(e.clone()));
                }
            }
        }
    }
    for (i, work) in works {
        let savepoint = tx.savepoint("job").await.map_err(pg_error)?;
        match work(&savepoint).await {
            Ok(events) => {
                savepoint.commit().await.map_err(pg_error)?;
                produced[i] = Some(Ok(events));
            }
            Err(e) => {
                savepoint.rollback().await.map_err(pg_error)?;
                produced[i] = Some(Err(e));
            }
        }
    }
    let produced = produced
        .into_iter()
        .map(|p| p.unwrap_or_else(|| Err(StoreError::Storage("a job was not run".into()))));
    let head: i64 = tx
        .query_one(
            "SELECT position FROM event_log_head WHERE only_row FOR UPDATE",
            &[],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    let at_ms = now_ms();
    let (mut positions, mut times, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
    let mut outcomes = Vec::with_capacity(produced.len());
    let mut appended = Vec::new();
    let mut next = head;
    for result in produced {
        let events = match result {
            Ok(events) => events,
            Err(e) => {
                outcomes.push(Err(e));
                continue;
            }
        };
        for event in events {
            next += 1;
            positions.push(next);
            times.push(at_ms);
            bodies.push(
                serde_json::to_string(&event).map_err(|e| {
                    StoreError::Storage(format!("an event does not serialise: {e}"))
                })?,
            );
            appended.push(event);
        }
        outcomes.push(Ok(next as u64));
    }
    if next > head {
        // Three statements in one round trip (the client pipelines them).
        let next_text = next.to_string();
        let events: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&positions, &times, &bodies];
        let raised: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&next];
        let notified: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&HEAD_CHANNEL, &next_text];
        tokio::try_join!(
            tx.execute(
                "INSERT INTO event_log(position, at_ms, body)
                 SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[])",
                &events,
            ),
            tx.execute(
                "UPDATE event_log_head SET position = $1 WHERE only_row",
                &raised,
            ),
            tx.execute("SELECT pg_notify($1, $2)", &notified),
        )
        .map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)?;
    let committed = (!appended.is_empty()).then(|| Committed {
        first_position: head as u64 + 1,
        events: appended.into(),
        notes,
    });
    Ok((outcomes, committed))
}

/// Raises `head` to `to`; whether it moved.
pub(super) fn raise(head: &mut u64, to: u64) -> bool {
    if to > *head {
        *head = to;
        true
    } else {
        false
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
