//! The event log in PostgreSQL, shared by every node. Appends are grouped: one writer task per node
//! takes whatever is queued and commits it in one transaction. Each transaction locks the log's one head
//! row, so positions are handed out and committed in order across nodes: a reader that has read up to a
//! position never later finds a smaller one appearing. The commit notifies `chathook_event_log` with the
//! new head, which every node listens to, so `wait_beyond` wakes for other nodes' appends too.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chathook_events::{Event, EventLog, EventLogError, LoggedEvent, StartAt};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use super::{pg_error, PgStore};
use crate::StoreError;

/// The channel a commit notifies with the new head.
const CHANNEL: &str = "chathook_event_log";

/// Most appends one transaction takes.
const MAX_GROUP: usize = 1024;

/// One caller's events and where its last position goes.
pub(super) struct Append {
    pub events: Vec<Event>,
    pub done: oneshot::Sender<Result<u64, StoreError>>,
}

/// Commits queued appends, a group per transaction, until every sender is gone.
pub(super) async fn write(
    pool: deadpool_postgres::Pool,
    mut queue: mpsc::Receiver<Append>,
    head: Arc<watch::Sender<u64>>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = queue.recv().await {
        group.push(first);
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(a) => group.push(a),
                Err(_) => break,
            }
        }
        match commit(&pool, &group).await {
            Ok(lasts) => {
                if let Some(newest) = lasts.iter().max() {
                    head.send_if_modified(|h| raise(h, *newest));
                }
                for (append, last) in group.drain(..).zip(lasts) {
                    let _ = append.done.send(Ok(last));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "event log commit failed; the group is rolled back");
                for append in group.drain(..) {
                    let _ = append.done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Appends every group member's events in one transaction; the last position of each member (the head
/// for a member without events).
async fn commit(pool: &deadpool_postgres::Pool, group: &[Append]) -> Result<Vec<u64>, StoreError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| StoreError::Storage(format!("PostgreSQL connection: {e}")))?;
    let tx = client.transaction().await.map_err(pg_error)?;
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
    let mut lasts = Vec::with_capacity(group.len());
    let mut next = head;
    for append in group {
        for event in &append.events {
            next += 1;
            positions.push(next);
            times.push(at_ms);
            bodies.push(
                serde_json::to_value(event).map_err(|e| {
                    StoreError::Storage(format!("an event does not serialise: {e}"))
                })?,
            );
        }
        lasts.push(next as u64);
    }
    if next > head {
        tx.execute(
            "INSERT INTO event_log(position, at_ms, body)
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::JSONB[])",
            &[&positions, &times, &bodies],
        )
        .await
        .map_err(pg_error)?;
        tx.execute(
            "UPDATE event_log_head SET position = $1 WHERE only_row",
            &[&next],
        )
        .await
        .map_err(pg_error)?;
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &next.to_string()])
            .await
            .map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)?;
    Ok(lasts)
}

/// Raises `head` to `to`; whether it moved.
fn raise(head: &mut u64, to: u64) -> bool {
    if to > *head {
        *head = to;
        true
    } else {
        false
    }
}

/// Follows other nodes' appends: listens on [`CHANNEL`] on a connection of its own (reconnecting after
/// a pause if it drops) and raises `head` to each notified position.
pub(super) async fn listen(config: tokio_postgres::Config, head: Arc<watch::Sender<u64>>) {
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(|cx| connection.poll_message(cx));
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(n) = message {
                            if tx.send(n.payload().to_string()).is_err() {
                                break;
                            }
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
                    .await
                    .is_ok()
                {
                    // what was appended before the LISTEN took effect
                    if let Ok(row) = client
                        .query_one("SELECT position FROM event_log_head WHERE only_row", &[])
                        .await
                    {
                        let position: i64 = row.get(0);
                        head.send_if_modified(|h| raise(h, position as u64));
                    }
                    while let Some(payload) = rx.recv().await {
                        if let Ok(position) = payload.parse::<u64>() {
                            head.send_if_modified(|h| raise(h, position));
                        }
                    }
                }
                driver.abort();
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for event log appends"),
        }
        if Arc::strong_count(&head) == 1 {
            return; // the store is gone
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn log_err(e: StoreError) -> EventLogError {
    EventLogError::Storage(e.to_string())
}

fn pg_log_err(e: tokio_postgres::Error) -> EventLogError {
    log_err(pg_error(e))
}

impl PgStore {
    /// Runs `sql` (`$1` the consumer's name, `$2` the value) on one consumer; an unknown one is an error.
    async fn update_consumer(
        &self,
        name: &str,
        sql: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<(), EventLogError> {
        let client = self.client().await.map_err(log_err)?;
        let updated = client
            .execute(sql, &[&name, value])
            .await
            .map_err(pg_log_err)?;
        if updated == 0 {
            return Err(EventLogError::UnknownConsumer(name.to_string()));
        }
        Ok(())
    }
}

#[async_trait]
impl EventLog for PgStore {
    async fn append(&self, events: Vec<Event>) -> Result<u64, EventLogError> {
        let (done, result) = oneshot::channel();
        self.appends
            .send(Append { events, done })
            .await
            .map_err(|_| EventLogError::Storage("the event log writer has stopped".into()))?;
        result
            .await
            .map_err(|_| EventLogError::Storage("the event log writer has stopped".into()))?
            .map_err(log_err)
    }

    async fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, EventLogError> {
        let client = self.client().await.map_err(log_err)?;
        let rows = client
            .query(
                "SELECT position, at_ms, body FROM event_log WHERE position > $1
                 ORDER BY position LIMIT $2",
                &[&(after as i64), &(limit as i64)],
            )
            .await
            .map_err(pg_log_err)?;
        rows.into_iter()
            .map(|row| {
                let position = row.get::<_, i64>(0) as u64;
                let body: serde_json::Value = row.get(2);
                let event = serde_json::from_value(body).map_err(|e| EventLogError::Corrupt {
                    position,
                    reason: e.to_string(),
                })?;
                Ok(LoggedEvent {
                    position,
                    at_ms: row.get(1),
                    event,
                })
            })
            .collect()
    }

    async fn register_consumer(&self, name: &str, start: StartAt) -> Result<u64, EventLogError> {
        let client = self.client().await.map_err(log_err)?;
        let row = client
            .query_one(
                "WITH added AS (
                     INSERT INTO consumers(name, position)
                     SELECT $1, CASE WHEN $2 THEN 0 ELSE
                         (SELECT position FROM event_log_head WHERE only_row) END
                     ON CONFLICT (name) DO NOTHING RETURNING position)
                 SELECT position FROM added
                 UNION ALL SELECT position FROM consumers WHERE name = $1
                 LIMIT 1",
                &[&name, &(start == StartAt::Beginning)],
            )
            .await
            .map_err(pg_log_err)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn remove_consumer(&self, name: &str) -> Result<(), EventLogError> {
        let client = self.client().await.map_err(log_err)?;
        client
            .execute("DELETE FROM consumers WHERE name = $1", &[&name])
            .await
            .map_err(pg_log_err)?;
        Ok(())
    }

    async fn ack(&self, name: &str, position: u64) -> Result<(), EventLogError> {
        self.update_consumer(
            name,
            "UPDATE consumers SET position = GREATEST(position, $2) WHERE name = $1",
            &(position as i64),
        )
        .await
    }

    async fn consumer_position(&self, name: &str) -> Result<u64, EventLogError> {
        let client = self.client().await.map_err(log_err)?;
        let row = client
            .query_opt("SELECT position FROM consumers WHERE name = $1", &[&name])
            .await
            .map_err(pg_log_err)?
            .ok_or_else(|| EventLogError::UnknownConsumer(name.to_string()))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn set_holding(&self, name: &str, holding: bool) -> Result<(), EventLogError> {
        self.update_consumer(
            name,
            "UPDATE consumers SET holds = $2 WHERE name = $1",
            &holding,
        )
        .await
    }

    async fn oldest(&self) -> Result<Option<(u64, i64)>, EventLogError> {
        let client = self.client().await.map_err(log_err)?;
        let row = client
            .query_opt(
                "SELECT position, at_ms FROM event_log ORDER BY position LIMIT 1",
                &[],
            )
            .await
            .map_err(pg_log_err)?;
        Ok(row.map(|r| (r.get::<_, i64>(0) as u64, r.get(1))))
    }

    async fn held_from(&self) -> Result<Option<u64>, EventLogError> {
        let client = self.client().await.map_err(log_err)?;
        let row = client
            .query_one("SELECT MIN(position) FROM consumers WHERE holds", &[])
            .await
            .map_err(pg_log_err)?;
        Ok(row.get::<_, Option<i64>>(0).map(|p| p as u64))
    }

    fn head(&self) -> u64 {
        *self.head.borrow()
    }

    async fn wait_beyond(&self, position: u64) {
        let mut rx = self.head.subscribe();
        let _ = rx.wait_for(|h| *h > position).await;
    }
}
