//! The webhook engine's tables in the embedded store.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::{AttemptQuery, AttemptRecord, PendingDelivery, StoreError, WebhookStore};

fn pending_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PendingDelivery> {
    Ok(PendingDelivery {
        delivery_id: r.get(0)?,
        endpoint_id: r.get(1)?,
        event: r.get(2)?,
        query: r.get(3)?,
        body: r.get(4)?,
        attempts: r.get(5)?,
        next_at_ms: r.get(6)?,
        event_at_ms: r.get(7)?,
        last_error: r.get(8)?,
        dead: r.get(9)?,
        dead_at_ms: r.get(10)?,
        source: r.get(11)?,
    })
}

const PENDING_COLUMNS: &str =
    "delivery_id, endpoint_id, event, query, body, attempts, next_at_ms, \
     event_at_ms, last_error, dead, dead_at_ms, source";

/// The tables that keep one JSON document per endpoint: its settings, and its health.
const ENDPOINTS: &str = "webhook_endpoints";
const HEALTH: &str = "webhook_endpoint_health";

impl SqliteStore {
    /// Stores `document` as endpoint `id`'s row of `table` (one of the document tables above).
    async fn put_document(
        &self,
        table: &'static str,
        id: &str,
        document: String,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        self.write(move |ctx| {
            ctx.conn.execute(
                &format!(
                    "INSERT INTO {table}(id, document) VALUES (?1, ?2)
                     ON CONFLICT(id) DO UPDATE SET document = excluded.document"
                ),
                params![id, document],
            )?;
            Ok(())
        })
        .await
    }

    /// Every row of `table` (one of the document tables above), by endpoint id.
    async fn documents(&self, table: &'static str) -> Result<Vec<(String, String)>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare(&format!("SELECT id, document FROM {table} ORDER BY id"))?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn put_endpoint(&self, id: &str, document: String) -> Result<(), StoreError> {
        self.put_document(ENDPOINTS, id, document).await
    }

    async fn delete_endpoint(&self, id: &str, consumer: &str) -> Result<bool, StoreError> {
        let (id, consumer) = (id.to_string(), consumer.to_string());
        self.write(move |ctx| {
            let n = ctx
                .conn
                .execute("DELETE FROM webhook_endpoints WHERE id = ?1", params![id])?;
            ctx.conn.execute(
                "DELETE FROM webhook_endpoint_health WHERE id = ?1",
                params![id],
            )?;
            ctx.conn.execute(
                "DELETE FROM webhook_pending WHERE endpoint_id = ?1",
                params![id],
            )?;
            ctx.conn.execute(
                "DELETE FROM webhook_attempts WHERE endpoint_id = ?1",
                params![id],
            )?;
            ctx.conn
                .execute("DELETE FROM consumers WHERE name = ?1", params![consumer])?;
            Ok(n > 0)
        })
        .await
    }

    async fn endpoints(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.documents(ENDPOINTS).await
    }

    async fn put_endpoint_health(&self, id: &str, document: String) -> Result<(), StoreError> {
        self.put_document(HEALTH, id, document).await
    }

    async fn endpoint_health(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.documents(HEALTH).await
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT value FROM settings WHERE key = ?1",
                    params![key],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn put_setting(&self, key: &str, value: String) -> Result<(), StoreError> {
        let key = key.to_string();
        self.write(move |ctx| {
            ctx.conn.execute(
                "INSERT INTO settings(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
        .await
    }

    async fn park_deliveries(&self, deliveries: Vec<PendingDelivery>) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        self.write(move |ctx| {
            let mut stmt = ctx.conn.prepare_cached(&format!(
                "INSERT OR REPLACE INTO webhook_pending({PENDING_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?;
            for d in &deliveries {
                stmt.execute(params![
                    d.delivery_id,
                    d.endpoint_id,
                    d.event,
                    d.query,
                    d.body,
                    d.attempts,
                    d.next_at_ms,
                    d.event_at_ms,
                    d.last_error,
                    d.dead,
                    d.dead_at_ms,
                    d.source
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn complete_deliveries(
        &self,
        endpoint_id: &str,
        ids: Vec<String>,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let endpoint_id = endpoint_id.to_string();
        self.write(move |ctx| {
            let mut stmt = ctx.conn.prepare_cached(
                "DELETE FROM webhook_pending WHERE endpoint_id = ?1 AND delivery_id = ?2",
            )?;
            for id in &ids {
                stmt.execute(params![endpoint_id, id])?;
            }
            Ok(())
        })
        .await
    }

    async fn due_deliveries(
        &self,
        endpoint_id: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let endpoint_id = endpoint_id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {PENDING_COLUMNS} FROM webhook_pending
                     WHERE endpoint_id = ?1 AND dead = 0 AND next_at_ms <= ?2
                     ORDER BY next_at_ms LIMIT ?3"
                ))?
                .query_map(params![endpoint_id, now_ms, limit as i64], pending_from_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn next_due(&self, endpoint_id: &str, after_ms: i64) -> Result<Option<i64>, StoreError> {
        let endpoint_id = endpoint_id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT MIN(next_at_ms) FROM webhook_pending
                     WHERE endpoint_id = ?1 AND dead = 0 AND next_at_ms > ?2",
                )?
                .query_row(params![endpoint_id, after_ms], |r| r.get(0))?)
        })
        .await
    }

    async fn dead_letters(
        &self,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let endpoint_id = endpoint_id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {PENDING_COLUMNS} FROM webhook_pending
                     WHERE endpoint_id = ?1 AND dead = 1 ORDER BY dead_at_ms DESC LIMIT ?2"
                ))?
                .query_map(params![endpoint_id, limit as i64], pending_from_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn revive(
        &self,
        endpoint_id: &str,
        delivery_id: Option<&str>,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let endpoint_id = endpoint_id.to_string();
        let delivery_id = delivery_id.map(str::to_string);
        self.write(move |ctx| {
            Ok(match delivery_id {
                Some(id) => ctx.conn.execute(
                    "UPDATE webhook_pending SET dead = 0, dead_at_ms = 0, attempts = 0, next_at_ms = ?3
                     WHERE endpoint_id = ?1 AND delivery_id = ?2 AND dead = 1",
                    params![endpoint_id, id, now_ms],
                )?,
                None => ctx.conn.execute(
                    "UPDATE webhook_pending SET dead = 0, dead_at_ms = 0, attempts = 0, next_at_ms = ?3
                     WHERE endpoint_id = ?1 AND dead = 1 AND dead_at_ms >= ?2",
                    params![endpoint_id, since_ms, now_ms],
                )?,
            })
        })
        .await
    }

    async fn pending_summary(
        &self,
        endpoint_id: &str,
    ) -> Result<(u64, u64, Option<i64>), StoreError> {
        let endpoint_id = endpoint_id.to_string();
        self.read(move |conn| {
            Ok(conn.query_row(
                "SELECT COALESCE(SUM(dead = 0), 0), COALESCE(SUM(dead = 1), 0),
                        MIN(CASE WHEN dead = 0 THEN event_at_ms END)
                 FROM webhook_pending WHERE endpoint_id = ?1",
                params![endpoint_id],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, i64>(1)? as u64,
                        r.get(2)?,
                    ))
                },
            )?)
        })
        .await
    }

    async fn record_attempts(&self, attempts: Vec<AttemptRecord>) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        self.write(move |ctx| {
            let mut stmt = ctx.conn.prepare_cached(
                "INSERT INTO webhook_attempts(endpoint_id, delivery_id, event, at_ms, success, status,
                 latency_ms, error, response, request, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for a in &attempts {
                stmt.execute(params![
                    a.endpoint_id,
                    a.delivery_id,
                    a.event,
                    a.at_ms,
                    a.success,
                    a.status,
                    a.latency_ms,
                    a.error,
                    a.response,
                    a.request,
                    a.source
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn attempt(
        &self,
        endpoint_id: &str,
        id: i64,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        let endpoint_id = endpoint_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT endpoint_id, delivery_id, event, at_ms, success, status, latency_ms, error,
                        response, request, source
                 FROM webhook_attempts WHERE endpoint_id = ?1 AND id = ?2",
            )?;
            let found = stmt
                .query_row(params![endpoint_id, id], |r| {
                    Ok(AttemptRecord {
                        endpoint_id: r.get(0)?,
                        delivery_id: r.get(1)?,
                        event: r.get(2)?,
                        at_ms: r.get(3)?,
                        success: r.get(4)?,
                        status: r.get(5)?,
                        latency_ms: r.get(6)?,
                        error: r.get(7)?,
                        response: r.get(8)?,
                        request: r.get(9)?,
                        source: r.get(10)?,
                    })
                })
                .optional()?;
            Ok(found)
        })
        .await
    }

    async fn attempts(&self, q: AttemptQuery) -> Result<Vec<(i64, AttemptRecord)>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, endpoint_id, delivery_id, event, at_ms, success, status, latency_ms, error, response,
                        source
                 FROM webhook_attempts
                 WHERE endpoint_id = ?1 AND (?2 IS NULL OR success = ?2) AND (?3 IS NULL OR event = ?3)
                   AND (?4 IS NULL OR id < ?4) AND (?5 IS NULL OR at_ms >= ?5) AND (?7 IS NULL OR id > ?7)
                 ORDER BY id DESC LIMIT ?6",
            )?;
            let rows = stmt
                .query_map(
                    params![q.endpoint_id, q.success, q.event, q.before_id, q.since_ms, q.limit as i64, q.after_id],
                    |r| {
                        Ok((
                            r.get(0)?,
                            AttemptRecord {
                                endpoint_id: r.get(1)?,
                                delivery_id: r.get(2)?,
                                event: r.get(3)?,
                                at_ms: r.get(4)?,
                                success: r.get(5)?,
                                status: r.get(6)?,
                                latency_ms: r.get(7)?,
                                error: r.get(8)?,
                                response: r.get(9)?,
                                request: String::new(),
                                source: r.get(10)?,
                            },
                        ))
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn prune_attempts(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.write(move |ctx| {
            Ok(ctx.conn.execute(
                "DELETE FROM webhook_attempts WHERE at_ms < ?1",
                params![before_ms],
            )?)
        })
        .await
    }
}
