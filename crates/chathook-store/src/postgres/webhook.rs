//! The webhook engine's tables in PostgreSQL: endpoint documents and health, settings, deliveries
//! waiting for a retry or dead-lettered, and the attempt log.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{pg_error, PgStore};
use crate::{AttemptQuery, AttemptRecord, PendingDelivery, StoreError, WebhookStore};

const PENDING_COLUMNS: &str =
    "delivery_id, endpoint_id, event, query, body, attempts, next_at_ms, \
     event_at_ms, last_error, dead, dead_at_ms, source";

fn pending_from_row(r: &Row) -> PendingDelivery {
    PendingDelivery {
        delivery_id: r.get(0),
        endpoint_id: r.get(1),
        event: r.get(2),
        query: r.get(3),
        body: r.get(4),
        attempts: r.get::<_, i32>(5) as u32,
        next_at_ms: r.get(6),
        event_at_ms: r.get(7),
        last_error: r.get(8),
        dead: r.get(9),
        dead_at_ms: r.get(10),
        source: r.get(11),
    }
}

/// The tables that keep one JSON document per endpoint: its settings, and its health.
const ENDPOINTS: &str = "webhook_endpoints";
const HEALTH: &str = "webhook_endpoint_health";

impl PgStore {
    /// Stores `document` as endpoint `id`'s row of `table` (one of the document tables above).
    async fn put_document(
        &self,
        table: &'static str,
        id: &str,
        document: String,
    ) -> Result<(), StoreError> {
        self.execute(
            format!(
                "INSERT INTO {table}(id, document) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET document = excluded.document"
            ),
            vec![Box::new(id.to_string()), Box::new(document)],
        )
        .await?;
        Ok(())
    }

    /// Every row of `table` (one of the document tables above), by endpoint id.
    async fn documents(&self, table: &'static str) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT id, document FROM {table} ORDER BY id"),
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn put_endpoint(&self, id: &str, document: String) -> Result<(), StoreError> {
        self.put_document(ENDPOINTS, id, document).await
    }

    async fn delete_endpoint(&self, id: &str, consumer: &str) -> Result<bool, StoreError> {
        let (id, consumer) = (id.to_string(), consumer.to_string());
        self.write_with(move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute("DELETE FROM webhook_endpoints WHERE id = $1", &[&id])
                    .await
                    .map_err(pg_error)?;
                for sql in [
                    "DELETE FROM webhook_endpoint_health WHERE id = $1",
                    "DELETE FROM webhook_pending WHERE endpoint_id = $1",
                    "DELETE FROM webhook_attempts WHERE endpoint_id = $1",
                ] {
                    tx.execute(sql, &[&id]).await.map_err(pg_error)?;
                }
                tx.execute("DELETE FROM consumers WHERE name = $1", &[&consumer])
                    .await
                    .map_err(pg_error)?;
                Ok((n > 0, Vec::new()))
            })
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
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn put_setting(&self, key: &str, value: String) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO settings(key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![Box::new(key.to_string()), Box::new(value)],
        )
        .await?;
        Ok(())
    }

    async fn park_deliveries(&self, deliveries: Vec<PendingDelivery>) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        self.write(move |tx| {
            Box::pin(async move {
                let statement = tx
                    .prepare(&format!(
                        "INSERT INTO webhook_pending({PENDING_COLUMNS})
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                         ON CONFLICT (endpoint_id, delivery_id) DO UPDATE SET
                         event = excluded.event, query = excluded.query, body = excluded.body,
                         attempts = excluded.attempts, next_at_ms = excluded.next_at_ms,
                         event_at_ms = excluded.event_at_ms, last_error = excluded.last_error,
                         dead = excluded.dead, dead_at_ms = excluded.dead_at_ms,
                         source = excluded.source"
                    ))
                    .await
                    .map_err(pg_error)?;
                for d in &deliveries {
                    tx.execute(
                        &statement,
                        &[
                            &d.delivery_id,
                            &d.endpoint_id,
                            &d.event,
                            &d.query,
                            &d.body,
                            &(d.attempts as i32),
                            &d.next_at_ms,
                            &d.event_at_ms,
                            &d.last_error,
                            &d.dead,
                            &d.dead_at_ms,
                            &d.source,
                        ],
                    )
                    .await
                    .map_err(pg_error)?;
                }
                Ok(Vec::new())
            })
        })
        .await?;
        Ok(())
    }

    async fn complete_deliveries(
        &self,
        endpoint_id: &str,
        ids: Vec<String>,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.execute(
            "DELETE FROM webhook_pending WHERE endpoint_id = $1 AND delivery_id = ANY($2)",
            vec![Box::new(endpoint_id.to_string()), Box::new(ids)],
        )
        .await?;
        Ok(())
    }

    async fn due_deliveries(
        &self,
        endpoint_id: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {PENDING_COLUMNS} FROM webhook_pending
                     WHERE endpoint_id = $1 AND NOT dead AND next_at_ms <= $2
                     ORDER BY next_at_ms LIMIT $3"
                ),
                &[&endpoint_id, &now_ms, &(limit as i64)],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(pending_from_row).collect())
    }

    async fn next_due(&self, endpoint_id: &str, after_ms: i64) -> Result<Option<i64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT MIN(next_at_ms) FROM webhook_pending
                 WHERE endpoint_id = $1 AND NOT dead AND next_at_ms > $2",
                &[&endpoint_id, &after_ms],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.get(0))
    }

    async fn dead_letters(
        &self,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {PENDING_COLUMNS} FROM webhook_pending
                     WHERE endpoint_id = $1 AND dead ORDER BY dead_at_ms DESC LIMIT $2"
                ),
                &[&endpoint_id, &(limit as i64)],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(pending_from_row).collect())
    }

    async fn revive(
        &self,
        endpoint_id: &str,
        delivery_id: Option<&str>,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        // one dead letter by id, or every one dead since `since_ms`
        let n = self
            .execute(
                "UPDATE webhook_pending
                 SET dead = FALSE, dead_at_ms = 0, attempts = 0, next_at_ms = $4
                 WHERE endpoint_id = $1 AND dead
                   AND (($2::TEXT IS NOT NULL AND delivery_id = $2)
                        OR ($2::TEXT IS NULL AND dead_at_ms >= $3))",
                vec![
                    Box::new(endpoint_id.to_string()),
                    Box::new(delivery_id.map(str::to_string)),
                    Box::new(since_ms),
                    Box::new(now_ms),
                ],
            )
            .await?;
        Ok(n as usize)
    }

    async fn pending_summary(
        &self,
        endpoint_id: &str,
    ) -> Result<(u64, u64, Option<i64>), StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COUNT(*) FILTER (WHERE NOT dead), COUNT(*) FILTER (WHERE dead),
                        MIN(event_at_ms) FILTER (WHERE NOT dead)
                 FROM webhook_pending WHERE endpoint_id = $1",
                &[&endpoint_id],
            )
            .await
            .map_err(pg_error)?;
        Ok((
            row.get::<_, i64>(0) as u64,
            row.get::<_, i64>(1) as u64,
            row.get(2),
        ))
    }

    async fn record_attempts(&self, attempts: Vec<AttemptRecord>) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        self.write(move |tx| {
            Box::pin(async move {
                // One statement for the batch; ids follow the batch's order.
                let column = |f: fn(&AttemptRecord) -> &str| -> Vec<&str> {
                    attempts.iter().map(f).collect()
                };
                let at: Vec<i64> = attempts.iter().map(|a| a.at_ms).collect();
                let success: Vec<bool> = attempts.iter().map(|a| a.success).collect();
                let status: Vec<Option<i32>> =
                    attempts.iter().map(|a| a.status.map(i32::from)).collect();
                let latency: Vec<i64> = attempts.iter().map(|a| i64::from(a.latency_ms)).collect();
                tx.execute(
                    "INSERT INTO webhook_attempts(endpoint_id, delivery_id, event, at_ms, success,
                         status, latency_ms, error, response, request, source)
                     SELECT e, d, v, t, s, st, l, er, r, q, so
                     FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BOOLEAN[],
                         $6::INTEGER[], $7::BIGINT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[])
                         WITH ORDINALITY AS u(e, d, v, t, s, st, l, er, r, q, so, n)
                     ORDER BY n",
                    &[
                        &column(|a| &a.endpoint_id),
                        &column(|a| &a.delivery_id),
                        &column(|a| &a.event),
                        &at,
                        &success,
                        &status,
                        &latency,
                        &column(|a| &a.error),
                        &column(|a| &a.response),
                        &column(|a| &a.request),
                        &column(|a| &a.source),
                    ],
                )
                .await
                .map_err(pg_error)?;
                Ok(Vec::new())
            })
        })
        .await?;
        Ok(())
    }

    async fn attempts(&self, q: AttemptQuery) -> Result<Vec<(i64, AttemptRecord)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, endpoint_id, delivery_id, event, at_ms, success, status, latency_ms,
                        error, response, source
                 FROM webhook_attempts
                 WHERE endpoint_id = $1 AND ($2::BOOLEAN IS NULL OR success = $2)
                   AND ($3::TEXT IS NULL OR event = $3) AND ($4::BIGINT IS NULL OR id < $4)
                   AND ($5::BIGINT IS NULL OR at_ms >= $5) AND ($7::BIGINT IS NULL OR id > $7)
                 ORDER BY id DESC LIMIT $6",
                &[
                    &q.endpoint_id,
                    &q.success,
                    &q.event,
                    &q.before_id,
                    &q.since_ms,
                    &(q.limit as i64),
                    &q.after_id,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), attempt_from_row(r, 1, String::new(), r.get(10))))
            .collect())
    }

    async fn attempt(
        &self,
        endpoint_id: &str,
        id: i64,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, endpoint_id, delivery_id, event, at_ms, success, status, latency_ms,
                        error, response, request, source
                 FROM webhook_attempts WHERE endpoint_id = $1 AND id = $2",
                &[&endpoint_id, &id],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| {
            let (request, source) = (r.get(10), r.get(11));
            attempt_from_row(&r, 1, request, source)
        }))
    }

    async fn prune_attempts(&self, before_ms: i64) -> Result<usize, StoreError> {
        let n = self
            .execute(
                "DELETE FROM webhook_attempts WHERE at_ms < $1",
                vec![Box::new(before_ms)],
            )
            .await?;
        Ok(n as usize)
    }
}

/// An attempt from the columns starting at `first` (endpoint_id .. response).
fn attempt_from_row(r: &Row, first: usize, request: String, source: String) -> AttemptRecord {
    AttemptRecord {
        endpoint_id: r.get(first),
        delivery_id: r.get(first + 1),
        event: r.get(first + 2),
        at_ms: r.get(first + 3),
        success: r.get(first + 4),
        status: r.get::<_, Option<i32>>(first + 5).map(|s| s as u16),
        latency_ms: r.get::<_, i64>(first + 6) as u32,
        error: r.get(first + 7),
        response: r.get(first + 8),
        request,
        source,
    }
}
