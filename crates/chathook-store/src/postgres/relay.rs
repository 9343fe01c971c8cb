//! Relay sources and the relay's ingest in PostgreSQL: source documents, and each ingest's
//! de-duplication keys claimed in one statement of the writer's group commit, its events appended
//! with the group's.

use async_trait::async_trait;
use chathook_events::Event;

use super::{pg_error, PgStore};
use crate::{first_of_each_key, Ingested, RelayStore, StoreError};

#[async_trait]
impl RelayStore for PgStore {
    async fn put_relay_source(&self, id: &str, document: String) -> Result<(), StoreError> {
        let id = id.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO relay_sources(id, document) VALUES ($1, $2)
                     ON CONFLICT(id) DO UPDATE SET document = excluded.document",
                    &[&id, &document],
                )
                .await
                .map_err(pg_error)?;
                Ok(Vec::new())
            })
        })
        .await
        .map(|_| ())
    }

    async fn delete_relay_source(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write_with(move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute("DELETE FROM relay_sources WHERE id = $1", &[&id])
                    .await
                    .map_err(pg_error)?;
                tx.execute("DELETE FROM relay_keys WHERE source = $1", &[&id])
                    .await
                    .map_err(pg_error)?;
                Ok((n > 0, Vec::new()))
            })
        })
        .await
    }

    async fn relay_sources(&self) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id, document FROM relay_sources ORDER BY id", &[])
            .await
            .map_err(pg_error)?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn relay_ingest(
        &self,
        source: &str,
        events: Vec<(Event, Option<i64>)>,
        seen_since_ms: i64,
    ) -> Result<Ingested, StoreError> {
        let source = source.to_string();
        let (events, twice) = first_of_each_key(events);
        self.write_with(move |tx| {
            Box::pin(async move {
                let keys: Vec<i64> = events.iter().filter_map(|(_, k)| *k).collect();
                // The keys new to the window (a key seen before it is recorded anew), in one statement.
                let fresh: std::collections::HashSet<i64> = if keys.is_empty() {
                    Default::default()
                } else {
                    tx.query(
                        "INSERT INTO relay_keys(source, key, at_ms)
                         SELECT $1, k, (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
                         FROM UNNEST($2::BIGINT[]) AS k
                         ON CONFLICT(source, key) DO UPDATE SET at_ms = excluded.at_ms
                         WHERE relay_keys.at_ms < $3
                         RETURNING key",
                        &[&source, &keys, &seen_since_ms],
                    )
                    .await
                    .map_err(pg_error)?
                    .into_iter()
                    .map(|r| r.get::<_, i64>(0))
                    .collect()
                };
                let total = events.len();
                let keep: Vec<Event> = events
                    .into_iter()
                    .filter(|(_, k)| k.is_none_or(|k| fresh.contains(&k)))
                    .map(|(e, _)| e)
                    .collect();
                let ingested = Ingested {
                    stored: keep.len(),
                    duplicates: twice + (total - keep.len()),
                };
                Ok((ingested, keep))
            })
        })
        .await
    }

    async fn prune_relay_keys(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.write_with(move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute("DELETE FROM relay_keys WHERE at_ms < $1", &[&before_ms])
                    .await
                    .map_err(pg_error)?;
                Ok((n as usize, Vec::new()))
            })
        })
        .await
    }
}
