//! The event log in PostgreSQL, shared by every node: appends go through the node's writer (`writer`,
//! which hands out positions in commit order under the head row's lock); reads, consumers and cursors
//! are plain queries. Every node listens for the writers' notifications, so `wait_beyond` wakes for
//! other nodes' appends too.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chathook_events::{Event, EventLog, EventLogError, LoggedEvent, StartAt};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use super::writer::{raise, HEAD_CHANNEL};
use super::{pg_error, PgStore};
use crate::StoreError;

/// Follows other nodes' appends: listens on [`HEAD_CHANNEL`] on a connection of its own (reconnecting after
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
                    .batch_execute(&format!("LISTEN {HEAD_CHANNEL}"))
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
        let statement = client.prepare_cached(sql).await.map_err(pg_log_err)?;
        let updated = client
            .execute(&statement, &[&name, value])
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
        self.write(move |_| Box::pin(async move { Ok(events) }))
            .await
            .map_err(log_err)
    }

    async fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, EventLogError> {
        let client = self.client().await.map_err(log_err)?;
        // Every dispatcher's read: prepared once per connection.
        let statement = client
            .prepare_cached(
                "SELECT position, at_ms, body FROM event_log WHERE position > $1
                 ORDER BY position LIMIT $2",
            )
            .await
            .map_err(pg_log_err)?;
        let rows = client
            .query(&statement, &[&(after as i64), &(limit as i64)])
            .await
            .map_err(pg_log_err)?;
        rows.into_iter()
            .map(|row| {
                let position = row.get::<_, i64>(0) as u64;
                let body: &str = row.get(2);
                let event = serde_json::from_str(body).map_err(|e| EventLogError::Corrupt {
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

    async fn seek_consumer(&self, name: &str, position: u64) -> Result<(), EventLogError> {
        self.update_consumer(
            name,
            "UPDATE consumers SET position = $2 WHERE name = $1",
            &(position as i64),
        )
        .await
    }

    async fn position_before(&self, at_ms: i64) -> Result<u64, EventLogError> {
        let head = self.head();
        let client = self.client().await.map_err(log_err)?;
        let row = client
            .query_opt(
                "SELECT position FROM event_log WHERE at_ms >= $1 ORDER BY position LIMIT 1",
                &[&at_ms],
            )
            .await
            .map_err(pg_log_err)?;
        Ok(row.map_or(head, |r| (r.get::<_, i64>(0) as u64).saturating_sub(1)))
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
