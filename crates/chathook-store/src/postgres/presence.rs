//! Connections recorded as online in PostgreSQL, under the node that holds them: a node that restarts
//! after a crash reports its own connections offline, never another node's.

use async_trait::async_trait;
use chathook_events::Event;

use super::{pg_error, PgStore};
use crate::{ConnRecord, EventsFor, PresenceStore, StoreError};

#[async_trait]
impl PresenceStore for PgStore {
    async fn record_online(&self, conn: ConnRecord, events: Vec<Event>) -> Result<(), StoreError> {
        let node = i32::from(self.node_id);
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO connections(node_id, conn_id, uid, device_flag, connected_at,
                         device_level)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (node_id, conn_id) DO UPDATE SET uid = excluded.uid,
                     device_flag = excluded.device_flag, connected_at = excluded.connected_at,
                     device_level = excluded.device_level",
                    &[
                        &node,
                        &(conn.conn_id as i64),
                        &conn.uid,
                        &i16::from(conn.device_flag),
                        &conn.connected_at_ms,
                        &i16::from(conn.device_level),
                    ],
                )
                .await
                .map_err(pg_error)?;
                Ok(events)
            })
        })
        .await?;
        Ok(())
    }

    async fn record_offline(&self, conn_id: u64, events: Vec<Event>) -> Result<(), StoreError> {
        let node = i32::from(self.node_id);
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM connections WHERE node_id = $1 AND conn_id = $2",
                    &[&node, &(conn_id as i64)],
                )
                .await
                .map_err(pg_error)?;
                Ok(events)
            })
        })
        .await?;
        Ok(())
    }

    async fn recover_connections(
        &self,
        events: EventsFor<Vec<ConnRecord>>,
    ) -> Result<Vec<ConnRecord>, StoreError> {
        let node = i32::from(self.node_id);
        self.write_with(move |tx| {
            Box::pin(async move {
                let conns = remove_connections(tx, node).await?;
                let caused = events(&conns);
                Ok((conns, caused))
            })
        })
        .await
    }
}

/// The columns [`conn_record`] reads, in its order.
pub(super) const CONN_COLUMNS: &str = "conn_id, uid, device_flag, connected_at, device_level";

pub(super) fn conn_record(r: &tokio_postgres::Row) -> ConnRecord {
    ConnRecord {
        conn_id: r.get::<_, i64>(0) as u64,
        uid: r.get(1),
        device_flag: r.get::<_, i16>(2) as u8,
        connected_at_ms: r.get(3),
        device_level: r.get::<_, i16>(4) as u8,
    }
}

/// Deletes `node`'s connections and answers them by connection id.
pub(super) async fn remove_connections(
    tx: &tokio_postgres::Transaction<'_>,
    node: i32,
) -> Result<Vec<ConnRecord>, StoreError> {
    let rows = tx
        .query(
            &format!("DELETE FROM connections WHERE node_id = $1 RETURNING {CONN_COLUMNS}"),
            &[&node],
        )
        .await
        .map_err(pg_error)?;
    let mut conns: Vec<ConnRecord> = rows.iter().map(conn_record).collect();
    conns.sort_by_key(|c| c.conn_id);
    Ok(conns)
}
