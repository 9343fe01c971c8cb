//! The attempt log's writing side: every delivery attempt is queued without waiting (a full queue
//! counts it as dropped, it never slows a delivery), written in batches by one task, and kept for
//! `webhook.attempt_retention`. A flush waits until everything queued before it is stored, which is
//! how a graceful stop loses none. Each stored batch is announced (`stored`), for live views to read
//! what is new.

use std::sync::Arc;
use std::time::Duration;

use chathook_store::{AttemptRecord, WebhookStore};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;

/// Attempts waiting for the writer; beyond this they are counted as dropped.
const QUEUE: usize = 65_536;

/// Most attempts written in one store call.
const MAX_BATCH: usize = 4096;

/// How long a batch of attempts that may wait (before-send hooks') waits for more before it is written.
/// A hook makes one attempt per message, just before the message's own commit: written at once, each
/// would take a commit of the store's writer ahead of the message's.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// What the writer takes, in order.
enum Entry {
    Attempt(AttemptRecord),
    /// An attempt whose batch may wait up to `LINGER` for others.
    Lingering(AttemptRecord),
    /// Answered once every attempt queued before it is written (or failed to be).
    Flush(oneshot::Sender<()>),
}

/// The queue into the attempt log. Cloning shares it.
#[derive(Clone)]
pub(crate) struct AttemptLog {
    queue: mpsc::Sender<Entry>,
    /// Counts the batches stored so far: a live view waits for it to change, then reads the new rows.
    stored: watch::Receiver<u64>,
    /// Attempts that found the queue full (`webhook_attempt_log_dropped`).
    dropped: Counter,
}

impl AttemptLog {
    /// Starts the writer task on `store`.
    pub(crate) fn start(
        store: Arc<dyn WebhookStore>,
        dropped: Counter,
    ) -> (AttemptLog, JoinHandle<()>) {
        let (queue, entries) = mpsc::channel(QUEUE);
        let (announce, stored) = watch::channel(0);
        let writer = tokio::spawn(write(store, entries, announce));
        (
            AttemptLog {
                queue,
                stored,
                dropped,
            },
            writer,
        )
    }

    /// Queues an attempt; never waits.
    pub(crate) fn record(&self, attempt: AttemptRecord) {
        self.queue_entry(Entry::Attempt(attempt));
    }

    /// Queues an attempt that may be written up to `LINGER` later, with others (a before-send hook's,
    /// so that it does not take a commit ahead of the message it judged); never waits.
    pub(crate) fn record_lingering(&self, attempt: AttemptRecord) {
        self.queue_entry(Entry::Lingering(attempt));
    }

    fn queue_entry(&self, entry: Entry) {
        if self.queue.try_send(entry).is_err() {
            self.dropped.inc();
        }
    }

    /// Changes each time a batch of attempts is stored.
    pub(crate) fn stored(&self) -> watch::Receiver<u64> {
        self.stored.clone()
    }

    /// Waits until every attempt recorded before this call is stored.
    pub(crate) async fn flush(&self) {
        let (flushed, written) = oneshot::channel();
        if self.queue.send(Entry::Flush(flushed)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// Writes attempts in batches: one store call for whatever has queued. A batch of lingering attempts
/// only waits up to `LINGER` from its first for more; any other attempt or a flush ends the wait. A
/// flush is answered after the batch that holds everything queued before it.
async fn write(
    store: Arc<dyn WebhookStore>,
    mut entries: mpsc::Receiver<Entry>,
    announce: watch::Sender<u64>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = entries.recv().await {
        let deadline = tokio::time::Instant::now() + LINGER;
        // Whether everything in the batch so far may wait.
        let mut may_wait = true;
        let mut next = Some(first);
        while let Some(entry) = next.take() {
            match entry {
                Entry::Attempt(a) => {
                    may_wait = false;
                    batch.push(a);
                }
                Entry::Lingering(a) => batch.push(a),
                Entry::Flush(done) => {
                    may_wait = false;
                    flushes.push(done);
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = match entries.try_recv() {
                Ok(entry) => Some(entry),
                Err(_) if may_wait => tokio::time::timeout_at(deadline, entries.recv())
                    .await
                    .ok()
                    .flatten(),
                Err(_) => None,
            };
        }
        if !batch.is_empty() {
            match store.record_attempts(std::mem::take(&mut batch)).await {
                Ok(()) => {
                    announce.send_modify(|n| *n += 1);
                }
                Err(e) => tracing::error!(error = %e, "cannot write the attempt log"),
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Removes attempts older than `retention` every `interval`, until `stop`.
pub(crate) async fn prune(
    store: Arc<dyn WebhookStore>,
    retention: Duration,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        let before = now_ms() - retention.as_millis() as i64;
        match store.prune_attempts(before).await {
            Ok(n) if n > 0 => tracing::debug!(removed = n, "pruned the attempt log"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot prune the attempt log"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathook_store::{AttemptQuery, SqliteOptions, SqliteStore};

    fn attempt(i: usize) -> AttemptRecord {
        AttemptRecord {
            endpoint_id: "ep".into(),
            delivery_id: format!("evt_{i}"),
            event: "message.sent".into(),
            at_ms: 1_000 + i as i64,
            success: true,
            status: Some(200),
            latency_ms: 1,
            error: String::new(),
            response: "ok".into(),
            request: "{}".into(),
            source: "local".into(),
        }
    }

    #[tokio::test]
    async fn a_flush_returns_once_everything_recorded_before_it_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn WebhookStore> =
            Arc::new(SqliteStore::open(SqliteOptions::new(dir.path())).unwrap());
        let (log, _writer) = AttemptLog::start(store.clone(), Counter::default());
        // more than one batch, queued while the writer is busy with the first
        let n = MAX_BATCH * 2 + 100;
        for i in 0..n {
            log.record(attempt(i));
        }
        log.flush().await;
        let stored = store
            .attempts(AttemptQuery {
                endpoint_id: "ep".into(),
                success: None,
                event: None,
                before_id: None,
                after_id: None,
                since_ms: None,
                limit: n + 1,
            })
            .await
            .unwrap();
        assert_eq!(stored.len(), n);
        assert_eq!(log.dropped.get(), 0);
    }

    #[tokio::test]
    async fn lingering_attempts_wait_for_company_but_never_past_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn WebhookStore> =
            Arc::new(SqliteStore::open(SqliteOptions::new(dir.path())).unwrap());
        let (log, _writer) = AttemptLog::start(store.clone(), Counter::default());
        let count = || {
            let store = store.clone();
            async move {
                store
                    .attempts(AttemptQuery {
                        endpoint_id: "ep".into(),
                        limit: 100,
                        ..AttemptQuery::default()
                    })
                    .await
                    .unwrap()
                    .len()
            }
        };
        log.record_lingering(attempt(1));
        log.record_lingering(attempt(2));
        tokio::time::sleep(LINGER * 4).await;
        assert_eq!(count().await, 2, "written once LINGER passed");
        log.record_lingering(attempt(3));
        log.flush().await;
        assert_eq!(count().await, 3, "a flush does not wait for LINGER");
    }
}
