//! Connections recorded as online in the embedded store.

use async_trait::async_trait;
use chathook_events::Event;
use rusqlite::params;

use super::SqliteStore;
use crate::{ConnRecord, EventsFor, PresenceStore, StoreError};

#[async_trait]
impl PresenceStore for SqliteStore {
    async fn record_online(&self, conn: ConnRecord, events: Vec<Event>) -> Result<(), StoreError> {
        self.write_logged(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO connections(conn_id, uid, device_flag, connected_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    conn.conn_id as i64,
                    conn.uid,
                    conn.device_flag,
                    conn.connected_at_ms
                ])?;
            Ok(((), events))
        })
        .await
    }

    async fn record_offline(&self, conn_id: u64, events: Vec<Event>) -> Result<(), StoreError> {
        self.write_logged(move |ctx| {
            ctx.conn
                .prepare_cached("DELETE FROM connections WHERE conn_id = ?1")?
                .execute(params![conn_id as i64])?;
            Ok(((), events))
        })
        .await
    }

    async fn recover_connections(
        &self,
        events: EventsFor<Vec<ConnRecord>>,
    ) -> Result<Vec<ConnRecord>, StoreError> {
        self.write_logged(move |ctx| {
            let conns = ctx
                .conn
                .prepare("SELECT conn_id, uid, device_flag, connected_at FROM connections ORDER BY conn_id")?
                .query_map([], |r| {
                    Ok(ConnRecord {
                        conn_id: r.get::<_, i64>(0)? as u64,
                        uid: r.get(1)?,
                        device_flag: r.get(2)?,
                        connected_at_ms: r.get(3)?,
                        device_level: 0,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            ctx.conn.execute("DELETE FROM connections", [])?;
            let events = events(&conns);
            Ok((conns, events))
        })
        .await
    }
}
