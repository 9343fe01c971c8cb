//! Each user's CMD queue in the embedded store: the `sync_once` messages WuKongIM backends send (friend
//! requests, group notices...), kept per recipient until the recipient's `/message/syncack`. A queue
//! position is the row's id: increasing per user (not contiguous), never reused.

use async_trait::async_trait;
use chathook_events::Message;
use rusqlite::{params, Connection};

use super::messages::message_from_row;
use super::SqliteStore;
use crate::header::header_bits;
use crate::{CmdQueueStore, PageBuilder, PullMode, StoreError};

/// Appends `message` to each of `uids`' queues (inside the message's own commit).
pub(super) fn enqueue(
    conn: &Connection,
    message: &Message,
    uids: &[String],
) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO cmd_queue(uid, message_id, client_msg_no, from_uid, channel_id, channel_type,
         header, setting, expire, timestamp, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for uid in uids {
        insert.execute(params![
            uid,
            message.message_id,
            message.client_msg_no,
            message.from_uid,
            message.channel_id,
            message.channel_type,
            header_bits(&message.header),
            message.setting,
            message.expire,
            message.timestamp,
            message.payload
        ])?;
    }
    Ok(())
}

#[async_trait]
impl CmdQueueStore for SqliteStore {
    async fn cmd_messages(
        &self,
        uid: &str,
        after: u64,
        limit: usize,
        max_bytes: usize,
        now: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let uid = uid.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT position, message_id, client_msg_no, from_uid, channel_id, channel_type, header,
                 setting, expire, timestamp, payload FROM cmd_queue
                 WHERE uid = ?1 AND position > ?2 AND (expire = 0 OR timestamp + expire > ?3)
                 ORDER BY position LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![uid, after as i64, now, limit as i64],
                message_from_row,
            )?;
            let mut page = PageBuilder::with(limit.max(1), max_bytes, PullMode::Up);
            for row in rows {
                if !page.offer(row?) {
                    break;
                }
            }
            Ok(page.finish().messages)
        })
        .await
    }

    async fn ack_cmd_messages(&self, uid: &str, up_to: u64) -> Result<usize, StoreError> {
        let uid = uid.to_string();
        self.write(move |ctx| {
            Ok(ctx
                .conn
                .prepare_cached("DELETE FROM cmd_queue WHERE uid = ?1 AND position <= ?2")?
                .execute(params![uid, up_to as i64])?)
        })
        .await
    }

    async fn remove_cmd_message(&self, uid: &str, message_id: i64) -> Result<usize, StoreError> {
        let uid = uid.to_string();
        self.write(move |ctx| {
            Ok(ctx
                .conn
                .prepare_cached("DELETE FROM cmd_queue WHERE uid = ?1 AND message_id = ?2")?
                .execute(params![uid, message_id])?)
        })
        .await
    }
}
