//! The writer of one node: one task takes whatever writes are queued and commits them in one
//! transaction (group commit): the group's message appends together, in a fixed number of statements
//! (`appends`), then each other job in a savepoint so that a failing job fails alone. The events
//! the jobs produce are appended at the end, under the lock of the event log's head row, so positions
//! are gap-free and committed in order across nodes; the commit notifies the other nodes of the new
//! head. After the commit, its observer (the cluster's relay) sees the events with their positions,
//! then the callers are answered.
//!
//! Two groups overlap: the next group runs its statements while the one before it appends its
//! events and commits (about a third of a group's time at `rest`'s load). The order is kept by
//! [`Turn`]: a group starts once the one before it holds the head (so that group never waits on a
//! lock of the next one), appends its events after it (the head row's lock orders them), commits
//! after it, and is reported after it. A group with jobs other than appends starts only once the
//! group before it has ended, so that those jobs read what it wrote. The hot statements are
//! prepared once per connection (the pool's statement cache).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use chathook_events::Event;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::Transaction;

use super::pg_error;
use crate::now_ms;
use crate::{CommitNote, CommitObserver, Committed, Snowflake, StoreError, WriterMetrics};
use prometheus_client::metrics::histogram::Histogram;

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

/// What every group's commit uses.
#[derive(Clone)]
struct Shared {
    pool: deadpool_postgres::Pool,
    ids: Arc<Mutex<Snowflake>>,
    /// How long each commit held the head row ([`WriterMetrics::log_lock_seconds`]).
    lock_held: Histogram,
}

/// A group's place behind the group before it. A signal is given by sending or by dropping the
/// sender (a group that fails gives both).
///
/// Why two groups never wait on each other: a group starts once the one before has settled, and
/// from then on the one before only waits for its own commit (it holds the head row, or takes no
/// lock at all); the new group may wait on the rows of the one before (a channel's seq row, a
/// `client_msg_no` it claimed, the head row), never the other way round.
struct Turn {
    /// Ends once the group before has committed or failed; `None` when there was none.
    before_done: Option<oneshot::Receiver<()>>,
    /// The group has jobs other than appends: it starts only once the group before has ended.
    start_after_before: bool,
    /// Given once the group takes no more row locks but the head's: the next group may start.
    settled: oneshot::Sender<()>,
    /// Given (dropped) when the group has committed or failed.
    done: oneshot::Sender<()>,
}

/// Waits for the signal of the group before (at once when there was none, or it was given already).
async fn before(signal: &mut Option<oneshot::Receiver<()>>) {
    if let Some(receiver) = signal.take() {
        let _ = receiver.await;
    }
}

/// What a group's commit gives back: each job's outcome, and the events appended (when there are
/// any).
type Outcome = Result<(Vec<Result<u64, StoreError>>, Option<Committed>), StoreError>;

/// A group in flight: its callers and its commit.
type InFlight = BoxFuture<'static, (Vec<oneshot::Sender<Result<u64, StoreError>>>, u64, Outcome)>;

/// Commits queued jobs, a group per transaction, until every sender is gone. A new group is gathered
/// once the newest one has settled; groups are reported in the order they were gathered.
pub(super) async fn run(
    pool: deadpool_postgres::Pool,
    mut queue: mpsc::Receiver<Job>,
    head: Arc<watch::Sender<u64>>,
    metrics: WriterMetrics,
    observer: Arc<OnceLock<CommitObserver>>,
    ids: Arc<Mutex<Snowflake>>,
    max_group: usize,
) {
    let shared = Shared {
        pool,
        ids,
        lock_held: metrics.log_lock_seconds.clone(),
    };
    let mut in_flight: FuturesOrdered<InFlight> = FuturesOrdered::new();
    // The newest group's `settled`, until it is given.
    let mut unsettled: Option<oneshot::Receiver<()>> = None;
    // The newest group's `done`, for the next group.
    let mut newest_done: Option<oneshot::Receiver<()>> = None;
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            Some((answers, jobs, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                report(answers, jobs, outcome, &head, &metrics, &observer);
            }
            _ = settled(&mut unsettled), if unsettled.is_some() => unsettled = None,
            first = queue.recv(), if open && unsettled.is_none() => {
                let Some(first) = first else {
                    open = false;
                    continue;
                };
                let group = gather(first, &mut queue, max_group);
                let (settled_tx, settled_rx) = oneshot::channel();
                let (done_tx, done_rx) = oneshot::channel();
                let turn = Turn {
                    before_done: newest_done.replace(done_rx),
                    start_after_before: group.iter().any(|j| matches!(j.task, Task::Work(_))),
                    settled: settled_tx,
                    done: done_tx,
                };
                unsettled = Some(settled_rx);
                in_flight.push_back(start(shared.clone(), group, turn));
            }
        }
    }
}

/// Waits until the newest group has settled. Leaves the signal in place, so that it is still there
/// when another branch of the loop wins the wait.
async fn settled(unsettled: &mut Option<oneshot::Receiver<()>>) {
    if let Some(receiver) = unsettled.as_mut() {
        let _ = receiver.await;
    }
}

/// `first` and whatever else is queued, up to `max_group` jobs.
fn gather(first: Job, queue: &mut mpsc::Receiver<Job>, max_group: usize) -> Vec<Job> {
    let mut group = Vec::with_capacity(max_group);
    group.push(first);
    while group.len() < max_group {
        match queue.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    group
}

/// Starts a group's commit on its own task; the future ends with its callers and outcome.
fn start(shared: Shared, group: Vec<Job>, turn: Turn) -> InFlight {
    let (tasks, answers): (Vec<Task>, Vec<_>) = group.into_iter().map(|j| (j.task, j.done)).unzip();
    let jobs = tasks.len() as u64;
    let task = tokio::spawn(commit(shared, tasks, turn));
    Box::pin(async move {
        let outcome = task
            .await
            .unwrap_or_else(|e| Err(StoreError::Storage(format!("a commit did not finish: {e}"))));
        (answers, jobs, outcome)
    })
}

/// A group's end, in order: the head raised, the observer told, then the callers answered.
fn report(
    answers: Vec<oneshot::Sender<Result<u64, StoreError>>>,
    jobs: u64,
    outcome: Outcome,
    head: &watch::Sender<u64>,
    metrics: &WriterMetrics,
    observer: &OnceLock<CommitObserver>,
) {
    match outcome {
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

/// Runs every job in one transaction and appends their events; each job's outcome, and the events
/// appended (when there are any). The steps: run the jobs, serialise their events, then append them
/// under the head row's lock and commit, in the group's turn.
async fn commit(shared: Shared, tasks: Vec<Task>, turn: Turn) -> Outcome {
    let Turn {
        mut before_done,
        start_after_before,
        settled,
        done: _done,
    } = turn;
    if start_after_before {
        before(&mut before_done).await;
    }
    let mut client = shared
        .pool
        .get()
        .await
        .map_err(|e| StoreError::Storage(format!("PostgreSQL connection: {e}")))?;
    let mut tx = client.transaction().await.map_err(pg_error)?;
    let (produced, notes) = run_jobs(&mut tx, tasks, &shared.ids).await?;
    let logged = serialise(produced)?;
    let (head, locked) = append_logged(&tx, &logged.bodies, now_ms(), &mut before_done).await?;
    drop(settled);
    before(&mut before_done).await;
    tx.commit().await.map_err(pg_error)?;
    if let Some(locked) = locked {
        shared.lock_held.observe(locked.elapsed().as_secs_f64());
    }
    let mut next = head as u64;
    let outcomes = logged
        .per_job
        .into_iter()
        .map(|made| {
            made.map(|n| {
                next += n as u64;
                next
            })
        })
        .collect();
    let committed = (!logged.events.is_empty()).then(|| Committed {
        first_position: head as u64 + 1,
        events: logged.events.into(),
        notes,
    });
    Ok((outcomes, committed))
}

/// Each job's events (or its error), in the group's order, and the stored messages' notes.
type Produced = (Vec<Result<Vec<Event>, StoreError>>, Vec<(i64, CommitNote)>);

/// 1. Runs the group's jobs: the message appends together, then each other job in a savepoint.
async fn run_jobs(
    tx: &mut deadpool_postgres::Transaction<'_>,
    tasks: Vec<Task>,
    ids: &std::sync::Mutex<crate::Snowflake>,
) -> Result<Produced, StoreError> {
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
        let all = super::appends::append_all(&*tx, ids, appends).await?;
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
        .map(|p| p.unwrap_or_else(|| Err(StoreError::Storage("a job was not run".into()))))
        .collect();
    Ok((produced, notes))
}

/// A group's events, serialised before the head is locked.
struct Logged {
    /// Each job's number of events, or its error.
    per_job: Vec<Result<usize, StoreError>>,
    /// Every event's stored body, in order.
    bodies: Vec<String>,
    /// The events themselves, for the commit's observer.
    events: Vec<Event>,
}

/// 2. Serialises the jobs' events (outside the head's lock: the lock is held for statements only).
fn serialise(produced: Vec<Result<Vec<Event>, StoreError>>) -> Result<Logged, StoreError> {
    let mut logged = Logged {
        per_job: Vec::with_capacity(produced.len()),
        bodies: Vec::new(),
        events: Vec::new(),
    };
    for result in produced {
        let events = match result {
            Ok(events) => events,
            Err(e) => {
                logged.per_job.push(Err(e));
                continue;
            }
        };
        logged.per_job.push(Ok(events.len()));
        for event in events {
            let body = serde_json::to_string(&event)
                .map_err(|e| StoreError::Storage(format!("an event does not serialise: {e}")))?;
            logged.bodies.push(body);
            logged.events.push(event);
        }
    }
    Ok(logged)
}

/// 3. Appends `bodies` after the log's head, raises the head and notifies the other nodes, in one
///    statement that locks the head row until the commit (positions stay gap-free and committed in
///    order across nodes; the statement waits while the group before holds the row). The head before
///    them, and when the lock was taken: when the statement was sent, or when the group before ended
///    if that was later. With nothing to append, the head is only read (no lock), once the group
///    before has ended, so that it counts that group's events.
async fn append_logged(
    tx: &deadpool_postgres::Transaction<'_>,
    bodies: &[String],
    at_ms: i64,
    before_done: &mut Option<oneshot::Receiver<()>>,
) -> Result<(i64, Option<Instant>), StoreError> {
    if bodies.is_empty() {
        before(before_done).await;
        let row = tx
            .query_one("SELECT position FROM event_log_head WHERE only_row", &[])
            .await
            .map_err(pg_error)?;
        return Ok((row.get(0), None));
    }
    let count = bodies.len() as i64;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&count, &at_ms, &bodies, &HEAD_CHANNEL];
    let statement = tx
        .prepare_cached(
            "WITH head AS (
               UPDATE event_log_head SET position = position + $1 WHERE only_row
               RETURNING position - $1 AS before),
             appended AS (
               INSERT INTO event_log(position, at_ms, body)
               SELECT head.before + e.ord, $2, e.body
               FROM head, UNNEST($3::TEXT[]) WITH ORDINALITY AS e(body, ord))
             SELECT before, pg_notify($4, (before + $1)::TEXT) FROM head",
        )
        .await
        .map_err(pg_error)?;
    let sent = Instant::now();
    let (row, before_ended) = tokio::join!(tx.query_one(&statement, &params), async {
        before(before_done).await;
        Instant::now()
    });
    let row = row.map_err(pg_error)?;
    Ok((row.get(0), Some(sent.max(before_ended))))
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
