//! Channel history in PostgreSQL: reads, and appends handed to the writer, which appends a group's
//! messages together (`appends`: sequence numbers, de-duplication).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chathook_events::Message;
use futures_util::TryStreamExt;
use tokio_postgres::Row;

use super::{pg_error, PgStore};
use crate::header::header_from_bits;
use crate::now_ms;
use crate::{
    AppendOutcome, EventsFor, Found, MessageLookup, MessageStore, NewMessage, PageBuilder,
    PullMode, Snowflake, StoreError, SyncPage, SyncQuery,
};

/// The columns [`message_from_row`] reads, in its order.
pub(super) const MESSAGE_COLUMNS: &str = "message_seq, message_id, client_msg_no, from_uid, \
     channel_id, channel_type, header, setting, expire, timestamp, payload";

pub(super) fn message_from_row(r: &Row) -> Message {
    Message {
        message_seq: r.get::<_, i64>(0) as u64,
        message_id: r.get(1),
        client_msg_no: r.get(2),
        from_uid: r.get(3),
        channel_id: r.get(4),
        channel_type: r.get::<_, i16>(5) as u8,
        header: header_from_bits(i64::from(r.get::<_, i16>(6))),
        setting: r.get::<_, i16>(7) as u8,
        expire: r.get::<_, i64>(8) as u32,
        timestamp: r.get(9),
        payload: r.get(10),
        sender: Default::default(),
    }
}

/// The next message id (ids increase in the order this node's writer runs its jobs).
fn next_id(ids: &Mutex<Snowflake>) -> i64 {
    let now = now_ms();
    match ids.lock() {
        Ok(mut ids) => ids.next_at(now),
        Err(poisoned) => poisoned.into_inner().next_at(now),
    }
}

#[async_trait]
impl MessageStore for PgStore {
    async fn append_message(
        &self,
        message: NewMessage,
        dedup_window_secs: u64,
        events: EventsFor<Message>,
    ) -> Result<AppendOutcome, StoreError> {
        let (answer, outcome) = tokio::sync::oneshot::channel();
        self.submit(super::writer::Task::Append(super::appends::Append {
            message,
            dedup_window_secs,
            events,
            answer,
        }))
        .await?;
        outcome
            .await
            .map_err(|_| StoreError::Storage("the append gave no answer".into()))
    }

    async fn sync(&self, query: SyncQuery) -> Result<SyncPage, StoreError> {
        let client = self.client().await?;
        let limit = query.limit.max(1);
        let fetch = (limit + 1) as i64;
        // Hidden: sync-once commands and expired messages.
        let visible = "(header & 4) = 0 AND (expire = 0 OR timestamp + expire > $3)";
        let (sql, bound) = match query.pull_mode {
            PullMode::Up => (
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE channel_key = $1 AND channel_type = $2 AND {visible}
                     AND message_seq >= $4 AND message_seq < $5 ORDER BY message_seq ASC LIMIT $6"
                ),
                if query.end_seq == 0 {
                    i64::MAX
                } else {
                    query.end_seq as i64
                },
            ),
            PullMode::Down => (
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE channel_key = $1 AND channel_type = $2 AND {visible}
                     AND message_seq <= $4 AND message_seq > $5 ORDER BY message_seq DESC LIMIT $6"
                ),
                query.end_seq as i64,
            ),
        };
        let start = match (query.pull_mode, query.start_seq) {
            (PullMode::Down, 0) => i64::MAX,
            (_, s) => s as i64,
        };
        let channel_type = i16::from(query.channel_type);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &query.channel_key,
            &channel_type,
            &query.now,
            &start,
            &bound,
            &fetch,
        ];
        // Rows are read as they arrive, and no further than the page needs.
        let stream = client.query_raw(&sql, params).await.map_err(pg_error)?;
        let mut stream = std::pin::pin!(stream);
        let mut page = PageBuilder::new(&query);
        while let Some(row) = stream.try_next().await.map_err(pg_error)? {
            if !page.offer(message_from_row(&row)) {
                break;
            }
        }
        Ok(page.finish())
    }

    async fn reserve_message_id(&self) -> Result<i64, StoreError> {
        Ok(next_id(&self.ids))
    }

    async fn last_seq(&self, channel_key: &str, channel_type: u8) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT last_seq FROM channel_seqs WHERE channel_key = $1 AND channel_type = $2",
                &[&channel_key, &i16::from(channel_type)],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    async fn find_messages(&self, lookup: MessageLookup) -> Result<SyncPage, StoreError> {
        let client = self.client().await?;
        let (key, ty) = (&lookup.channel_key, i16::from(lookup.channel_type));
        let mut found = Found::new(lookup.max_bytes);
        let mut keep = |rows: Vec<Row>| {
            for m in rows.iter().map(message_from_row) {
                found.keep(Some(m));
            }
        };
        let base = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE channel_key = $1 AND channel_type = $2"
        );
        for seq in &lookup.seqs {
            let rows = client
                .query(
                    &format!("{base} AND message_seq = $3"),
                    &[key, &ty, &(*seq as i64)],
                )
                .await
                .map_err(pg_error)?;
            keep(rows);
        }
        for id in &lookup.message_ids {
            let rows = client
                .query(
                    &format!("{base} AND message_id = $3 LIMIT 1"),
                    &[key, &ty, id],
                )
                .await
                .map_err(pg_error)?;
            keep(rows);
        }
        for no in &lookup.client_msg_nos {
            let rows = client
                .query(
                    &format!("{base} AND client_msg_no = $3 LIMIT 1"),
                    &[key, &ty, no],
                )
                .await
                .map_err(pg_error)?;
            keep(rows);
        }
        Ok(found.finish())
    }

    async fn delete_range(
        &self,
        channel_key: &str,
        channel_type: u8,
        start: u64,
        end: u64,
    ) -> Result<usize, StoreError> {
        // `channel_seqs` keeps each channel's newest seq, deleted or not.
        let n = self
            .execute(
                "DELETE FROM messages WHERE channel_key = $1 AND channel_type = $2
                 AND message_seq BETWEEN $3 AND $4",
                vec![
                    Box::new(channel_key.to_string()),
                    Box::new(i16::from(channel_type)),
                    Box::new(start as i64),
                    Box::new(end as i64),
                ],
            )
            .await?;
        Ok(n as usize)
    }
}

/// The message id generator of a node, shared by its writer's jobs.
pub(super) fn ids(node_id: u16) -> Arc<Mutex<Snowflake>> {
    Arc::new(Mutex::new(Snowflake::new(node_id, 0)))
}
