//! Relay sources and the relay's ingest in the embedded store: source documents, and each ingest's
//! events appended with its de-duplication keys in one job of the writer's group commit.

use async_trait::async_trait;
use chathook_events::Event;
use rusqlite::params;

use super::SqliteStore;
use crate::now_ms;
use crate::{first_of_each_key, Ingested, RelayStore, StoreError};

#[async_trait]
impl RelayStore for SqliteStore {
    async fn put_relay_source(&self, id: &str, document: String) -> Result<(), StoreError> {
        let id = id.to_string();
        self.write(move |ctx| {
            ctx.conn.execute(
                "INSERT INTO relay_sources(id, document) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET document = excluded.document",
                params![id, document],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_relay_source(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |ctx| {
            let n = ctx
                .conn
                .execute("DELETE FROM relay_sources WHERE id = ?1", params![id])?;
            ctx.conn
                .execute("DELETE FROM relay_keys WHERE source = ?1", params![id])?;
            Ok(n > 0)
        })
        .await
    }

    async fn relay_sources(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare("SELECT id, document FROM relay_sources ORDER BY id")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn relay_ingest(
        &self,
        source: &str,
        events: Vec<(Event, Option<i64>)>,
        seen_since_ms: i64,
    ) -> Result<Ingested, StoreError> {
        let source = source.to_string();
        let (events, twice) = first_of_each_key(events);
        self.write_logged(move |ctx| {
            let now = now_ms();
            let mut keep = Vec::with_capacity(events.len());
            let mut duplicates = twice;
            {
                // A key seen before the window counts as new again (and is recorded anew).
                let mut claim = ctx.conn.prepare_cached(
                    "INSERT INTO relay_keys(source, key, at_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT(source, key) DO UPDATE SET at_ms = excluded.at_ms
                     WHERE relay_keys.at_ms < ?4",
                )?;
                for (event, key) in events {
                    let new = match key {
                        Some(k) => claim.execute(params![source, k, now, seen_since_ms])? == 1,
                        None => true,
                    };
                    if new {
                        keep.push(event);
                    } else {
                        duplicates += 1;
                    }
                }
            }
            let ingested = Ingested {
                stored: keep.len(),
                duplicates,
            };
            Ok((ingested, keep))
        })
        .await
    }

    async fn prune_relay_keys(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.write(move |ctx| {
            Ok(ctx.conn.execute(
                "DELETE FROM relay_keys WHERE at_ms < ?1",
                params![before_ms],
            )?)
        })
        .await
    }
}
