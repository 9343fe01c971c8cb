//! Each user's CMD queue in PostgreSQL: the `sync_once` messages backends send, kept per recipient until
//! the recipient's `/message/syncack`. A queue position is the row's id: increasing (not contiguous),
//! never reused.

use async_trait::async_trait;
use chathook_events::Message;
use futures_util::TryStreamExt;
use tokio_postgres::GenericClient;

use super::messages::message_from_row;
use super::{pg_error, PgStore};
use crate::header::header_bits;
use crate::{CmdQueueStore, PageBuilder, PullMode, StoreError};

/// Appends `message` to each of `uids`' queues (inside the message's own commit).
pub(super) async fn enqueue(
    c: &impl GenericClient,
    message: &Message,
    uids: &[String],
) -> Result<(), StoreError> {
    for uid in uids {
        c.execute(
            "INSERT INTO cmd_queue(uid, message_id, client_msg_no, from_uid, channel_id, channel_type,
             header, setting, expire, timestamp, payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                uid,
                &message.message_id,
                &message.client_msg_no,
                &message.from_uid,
                &message.channel_id,
                &i16::from(message.channel_type),
                &(header_bits(&message.header) as i16),
                &i16::from(message.setting),
                &i64::from(message.expire),
                &message.timestamp,
                &message.payload,
            ],
        )
        .await
        .map_err(pg_error)?;
    }
    Ok(())
}

#[async_trait]
impl CmdQueueStore for PgStore {
    async fn cmd_messages(
        &self,
        uid: &str,
        after: u64,
        limit: usize,
        max_bytes: usize,
        now: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let client = self.client().await?;
        let (after, limit_rows) = (after as i64, limit as i64);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&uid, &after, &now, &limit_rows];
        // Rows are read as they arrive, and no further than the budget.
        let stream = client
            .query_raw(
                "SELECT position, message_id, client_msg_no, from_uid, channel_id, channel_type, header,
                 setting, expire, timestamp, payload FROM cmd_queue
                 WHERE uid = $1 AND position > $2 AND (expire = 0 OR timestamp + expire > $3)
                 ORDER BY position LIMIT $4",
                params,
            )
            .await
            .map_err(pg_error)?;
        let mut stream = std::pin::pin!(stream);
        let mut page = PageBuilder::with(limit.max(1), max_bytes, PullMode::Up);
        while let Some(row) = stream.try_next().await.map_err(pg_error)? {
            if !page.offer(message_from_row(&row)) {
                break;
            }
        }
        Ok(page.finish().messages)
    }

    async fn ack_cmd_messages(&self, uid: &str, up_to: u64) -> Result<usize, StoreError> {
        let n = self
            .execute(
                "DELETE FROM cmd_queue WHERE uid = $1 AND position <= $2",
                vec![Box::new(uid.to_string()), Box::new(up_to as i64)],
            )
            .await?;
        Ok(n as usize)
    }

    async fn remove_cmd_message(&self, uid: &str, message_id: i64) -> Result<usize, StoreError> {
        let n = self
            .execute(
                "DELETE FROM cmd_queue WHERE uid = $1 AND message_id = $2",
                vec![Box::new(uid.to_string()), Box::new(message_id)],
            )
            .await?;
        Ok(n as usize)
    }
}
