//! What the nodes sharing this database coordinate through ([`ClusterStore`]): the observer of this
//! node's commits, the other nodes' connections at one instant, heartbeats (`nodes`), the nodes' figures
//! (`node_figures`), the take-over of a silent node's connections, and named leases (`leases`). Times
//! come from the database's clock.

use async_trait::async_trait;

use super::presence::{conn_record, remove_connections, CONN_COLUMNS};
use super::{pg_error, PgStore};
use crate::{ClusterStore, CommitObserver, ConnRecord, EventsFor, StoreError};

/// The database's clock in unix milliseconds, as SQL.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::BIGINT";

#[async_trait]
impl ClusterStore for PgStore {
    fn node_id(&self) -> u16 {
        self.node_id
    }

    fn observe_commits(&self, observer: CommitObserver) {
        let _ = self.observer.set(observer);
    }

    async fn cluster_presence(&self) -> Result<(u64, Vec<(u16, ConnRecord)>), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        let head: i64 = tx
            .query_one("SELECT position FROM event_log_head WHERE only_row", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        let rows = tx
            .query(
                &format!(
                    "SELECT {CONN_COLUMNS}, node_id FROM connections WHERE node_id <> $1
                     ORDER BY node_id, conn_id"
                ),
                &[&i32::from(self.node_id)],
            )
            .await
            .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        let conns = rows
            .iter()
            .map(|r| (r.get::<_, i32>(5) as u16, conn_record(r)))
            .collect();
        Ok((head as u64, conns))
    }

    async fn heartbeat(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO nodes(node_id, seen_at_ms) VALUES ($1, {NOW_MS})
                     ON CONFLICT (node_id) DO UPDATE SET seen_at_ms = excluded.seen_at_ms"
                ),
                &[&i32::from(self.node_id)],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn leave(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .batch_execute(&format!(
                "UPDATE nodes SET seen_at_ms = 0 WHERE node_id = {node};
                 DELETE FROM node_figures WHERE node_id = {node};",
                node = self.node_id
            ))
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn publish_figures(&self, figures: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO node_figures(node_id, at_ms, figures) VALUES ($1, {NOW_MS}, $2)
                     ON CONFLICT (node_id) DO UPDATE
                     SET at_ms = excluded.at_ms, figures = excluded.figures"
                ),
                &[&i32::from(self.node_id), &figures],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn node_figures(&self, window_ms: i64) -> Result<Vec<(u16, i64, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT node_id, {NOW_MS} - at_ms, figures FROM node_figures
                     WHERE at_ms >= {NOW_MS} - $1 ORDER BY node_id"
                ),
                &[&window_ms],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u16, r.get(1), r.get(2)))
            .collect())
    }

    async fn live_nodes(&self, window_ms: i64) -> Result<Vec<u16>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT node_id FROM nodes WHERE seen_at_ms >= {NOW_MS} - $1 OR node_id = $2
                     ORDER BY node_id"
                ),
                &[&window_ms, &i32::from(self.node_id)],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(|r| r.get::<_, i32>(0) as u16).collect())
    }

    async fn silent_nodes(&self, timeout_ms: i64) -> Result<Vec<u16>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT DISTINCT c.node_id FROM connections c
                     LEFT JOIN nodes n ON n.node_id = c.node_id
                     WHERE c.node_id <> $1
                       AND (n.seen_at_ms IS NULL OR n.seen_at_ms < {NOW_MS} - $2)
                     ORDER BY c.node_id"
                ),
                &[&i32::from(self.node_id), &timeout_ms],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(|r| r.get::<_, i32>(0) as u16).collect())
    }

    async fn take_over_connections(
        &self,
        node: u16,
        timeout_ms: i64,
        events: EventsFor<Vec<ConnRecord>>,
    ) -> Result<Vec<ConnRecord>, StoreError> {
        let node = i32::from(node);
        self.write_with(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO nodes(node_id, seen_at_ms) VALUES ($1, 0)
                     ON CONFLICT (node_id) DO NOTHING",
                    &[&node],
                )
                .await
                .map_err(pg_error)?;
                // Locked until the commit: a second node taking over at once skips it, and finds the
                // connections gone once it may look.
                let silent = tx
                    .query_opt(
                        &format!(
                            "SELECT 1 FROM nodes WHERE node_id = $1 AND seen_at_ms < {NOW_MS} - $2
                             FOR UPDATE SKIP LOCKED"
                        ),
                        &[&node, &timeout_ms],
                    )
                    .await
                    .map_err(pg_error)?
                    .is_some();
                if !silent {
                    return Ok((Vec::new(), Vec::new()));
                }
                let conns = remove_connections(tx, node).await?;
                let caused = if conns.is_empty() {
                    Vec::new()
                } else {
                    events(&conns)
                };
                Ok((conns, caused))
            })
        })
        .await
    }

    async fn acquire_leases(
        &self,
        names: Vec<String>,
        ttl_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "INSERT INTO leases(name, node_id, expires_at_ms)
                     SELECT name, $2, {NOW_MS} + $3 FROM UNNEST($1::TEXT[]) AS name
                     ON CONFLICT (name) DO UPDATE SET node_id = excluded.node_id,
                         expires_at_ms = excluded.expires_at_ms
                     WHERE leases.node_id = excluded.node_id OR leases.expires_at_ms < {NOW_MS}
                     RETURNING name"
                ),
                &[&names, &i32::from(self.node_id), &ttl_ms],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn release_leases(&self, names: Vec<String>) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM leases WHERE node_id = $1 AND name = ANY($2)",
                &[&i32::from(self.node_id), &names],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }
}
