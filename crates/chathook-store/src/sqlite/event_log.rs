//! The durable event log and its consumers' cursors in the embedded store.

use async_trait::async_trait;
use chathook_events::{Event, EventLog, EventLogError, LoggedEvent, StartAt};
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::StoreError;

impl SqliteStore {
    /// Runs `sql` (`?1` the consumer's name, `?2` the value) on one consumer; an unknown one is an error.
    async fn update_consumer(
        &self,
        name: &str,
        sql: &'static str,
        value: i64,
    ) -> Result<(), EventLogError> {
        let owned = name.to_string();
        let updated = self
            .write(move |ctx| Ok(ctx.conn.execute(sql, params![owned, value])?))
            .await
            .map_err(log_err)?;
        if updated == 0 {
            return Err(EventLogError::UnknownConsumer(name.to_string()));
        }
        Ok(())
    }
}

fn log_err(e: StoreError) -> EventLogError {
    EventLogError::Storage(e.to_string())
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn append(&self, events: Vec<Event>) -> Result<u64, EventLogError> {
        self.write(move |ctx| ctx.log_events(events))
            .await
            .map(|h| h.unwrap_or_else(|| self.head()))
            .map_err(log_err)
    }

    async fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, EventLogError> {
        // A caught-up reader: the events the writer just committed, without reading them back.
        if let Some(events) = self.inner.tail.read_after(after, limit, self.head()) {
            return Ok(events);
        }
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT position, at_ms, body FROM events WHERE position > ?1 ORDER BY position LIMIT ?2",
                )?;
                let rows = stmt
                    .query_map(params![after as i64, limit as i64], |r| {
                        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                // Resolved on the same read connection (and snapshot): message events refer to history.
                Ok(rows
                    .into_iter()
                    .map(|(position, at_ms, body)| {
                        super::event_body::decode(conn, &body).map(|event| LoggedEvent {
                            position,
                            at_ms,
                            event,
                        })
                        .map_err(|reason| (position, reason))
                    })
                    .collect::<Vec<_>>())
            })
            .await
            .map_err(log_err)?;
        rows.into_iter()
            .map(|r| r.map_err(|(position, reason)| EventLogError::Corrupt { position, reason }))
            .collect()
    }

    async fn register_consumer(&self, name: &str, start: StartAt) -> Result<u64, EventLogError> {
        let name = name.to_string();
        self.write(move |ctx| {
            let existing: Option<i64> = ctx
                .conn
                .query_row(
                    "SELECT position FROM consumers WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(p) = existing {
                return Ok(p as u64);
            }
            let position: i64 = match start {
                StartAt::Beginning => 0,
                StartAt::Head => ctx.conn.query_row(
                    "SELECT COALESCE(MAX(position), 0) FROM events",
                    [],
                    |r| r.get(0),
                )?,
            };
            ctx.conn.execute(
                "INSERT INTO consumers(name, position) VALUES (?1, ?2)",
                params![name, position],
            )?;
            Ok(position as u64)
        })
        .await
        .map_err(log_err)
    }

    async fn remove_consumer(&self, name: &str) -> Result<(), EventLogError> {
        let name = name.to_string();
        self.write(move |ctx| {
            ctx.conn
                .execute("DELETE FROM consumers WHERE name = ?1", params![name])?;
            Ok(())
        })
        .await
        .map_err(log_err)
    }

    async fn ack(&self, name: &str, position: u64) -> Result<(), EventLogError> {
        self.update_consumer(
            name,
            "UPDATE consumers SET position = MAX(position, ?2) WHERE name = ?1",
            position as i64,
        )
        .await
    }

    async fn seek_consumer(&self, name: &str, position: u64) -> Result<(), EventLogError> {
        self.update_consumer(
            name,
            "UPDATE consumers SET position = ?2 WHERE name = ?1",
            position as i64,
        )
        .await
    }

    async fn position_before(&self, at_ms: i64) -> Result<u64, EventLogError> {
        let head = self.head();
        let first: Option<i64> = self
            .read(move |conn| {
                // Positions follow append time: the scan stops at the first event late enough.
                Ok(conn
                    .query_row(
                        "SELECT position FROM events WHERE at_ms >= ?1 ORDER BY position LIMIT 1",
                        params![at_ms],
                        |r| r.get(0),
                    )
                    .optional()?)
            })
            .await
            .map_err(log_err)?;
        Ok(first.map_or(head, |p| (p as u64).saturating_sub(1)))
    }

    async fn consumer_position(&self, name: &str) -> Result<u64, EventLogError> {
        let name = name.to_string();
        let found = self
            .read({
                let name = name.clone();
                move |conn| {
                    Ok(conn
                        .query_row(
                            "SELECT position FROM consumers WHERE name = ?1",
                            params![name],
                            |r| r.get::<_, i64>(0),
                        )
                        .optional()?)
                }
            })
            .await
            .map_err(log_err)?;
        found
            .map(|p| p as u64)
            .ok_or(EventLogError::UnknownConsumer(name))
    }

    async fn set_holding(&self, name: &str, holding: bool) -> Result<(), EventLogError> {
        self.update_consumer(
            name,
            "UPDATE consumers SET holds = ?2 WHERE name = ?1",
            i64::from(holding),
        )
        .await
    }

    async fn oldest(&self) -> Result<Option<(u64, i64)>, EventLogError> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT position, at_ms FROM events ORDER BY position LIMIT 1",
                    [],
                    |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)?)),
                )
                .optional()?)
        })
        .await
        .map_err(log_err)
    }

    async fn held_from(&self) -> Result<Option<u64>, EventLogError> {
        self.read(|conn| {
            let min: Option<i64> = conn.query_row(
                "SELECT MIN(position) FROM consumers WHERE holds = 1",
                [],
                |r| r.get(0),
            )?;
            Ok(min.map(|p| p as u64))
        })
        .await
        .map_err(log_err)
    }

    fn head(&self) -> u64 {
        *self.inner.head.borrow()
    }

    async fn wait_beyond(&self, position: u64) {
        let mut rx = self.inner.head.clone();
        let _ = rx.wait_for(|h| *h > position).await;
    }
}
