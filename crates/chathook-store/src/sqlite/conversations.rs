//! Conversation lists in the embedded store. Nothing is written per recipient per message: a user's
//! conversations are the groups they subscribe to and the person channels they have history in (indexed
//! once per pair, when the channel's first message is stored); the rest (last message, unread count) is
//! read at sync time from the channel's history and the user's read and delete positions.

use async_trait::async_trait;
use chathook_events::Message;
use rusqlite::{params, Connection, OptionalExtension};

use super::messages::message_from_row;
use super::SqliteStore;
use crate::{ConversationRecord, ConversationStore, StoreError};

const LAST_MESSAGE: &str = "SELECT message_seq, message_id, client_msg_no, from_uid, channel_id,
    channel_type, header, setting, expire, timestamp, payload FROM messages
    WHERE channel_key = ?1 AND channel_type = ?2 ORDER BY message_seq DESC LIMIT 1";

fn record(
    conn: &Connection,
    uid: &str,
    channel_key: String,
    channel_id: String,
    channel_type: u8,
) -> Result<ConversationRecord, StoreError> {
    let last: Option<Message> = conn
        .prepare_cached(LAST_MESSAGE)?
        .query_row(params![channel_key, channel_type], message_from_row)
        .optional()?;
    let (read_seq, deleted_seq) = conn
        .prepare_cached(
            "SELECT read_seq, deleted_seq FROM conversation_state
             WHERE uid = ?1 AND channel_key = ?2 AND channel_type = ?3",
        )?
        .query_row(params![uid, channel_key, channel_type], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
        .optional()?
        .unwrap_or((0, 0));
    Ok(ConversationRecord {
        channel_key,
        channel_id,
        channel_type,
        read_seq,
        deleted_seq,
        last,
    })
}

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn conversations(&self, uid: &str) -> Result<Vec<ConversationRecord>, StoreError> {
        let uid = uid.to_string();
        self.read(move |conn| {
            let groups: Vec<(String, u8)> = conn
                .prepare_cached(
                    "SELECT channel_id, channel_type FROM subscribers WHERE uid = ?1 ORDER BY rowid",
                )?
                .query_map(params![uid], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let people: Vec<(String, String)> = conn
                .prepare_cached("SELECT peer, channel_key FROM person_channels WHERE uid = ?1")?
                .query_map(params![uid], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(groups.len() + people.len());
            for (id, channel_type) in groups {
                out.push(record(conn, &uid, id.clone(), id, channel_type)?);
            }
            for (peer, key) in people {
                out.push(record(conn, &uid, key, peer, 1)?);
            }
            Ok(out)
        })
        .await
    }

    async fn own_last_seq(
        &self,
        channel_key: &str,
        channel_type: u8,
        uid: &str,
        after: u64,
        scan_max: usize,
    ) -> Result<u64, StoreError> {
        let (key, uid) = (channel_key.to_string(), uid.to_string());
        self.read(move |conn| {
            let seq: Option<i64> = conn
                .prepare_cached(
                    "SELECT MAX(message_seq) FROM (SELECT message_seq, from_uid FROM messages
                     WHERE channel_key = ?1 AND channel_type = ?2 AND message_seq > ?3
                     ORDER BY message_seq DESC LIMIT ?4) WHERE from_uid = ?5",
                )?
                .query_row(
                    params![key, channel_type, after as i64, scan_max as i64, uid],
                    |r| r.get(0),
                )?;
            Ok(seq.unwrap_or(0) as u64)
        })
        .await
    }

    async fn mark_conversation(
        &self,
        uid: &str,
        channel_key: &str,
        channel_type: u8,
        read_seq: u64,
        deleted_seq: u64,
    ) -> Result<(), StoreError> {
        let (uid, key) = (uid.to_string(), channel_key.to_string());
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO conversation_state(uid, channel_key, channel_type, read_seq, deleted_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(uid, channel_key, channel_type) DO UPDATE SET
                       read_seq = MAX(read_seq, excluded.read_seq),
                       deleted_seq = MAX(deleted_seq, excluded.deleted_seq)",
                )?
                .execute(params![uid, key, channel_type, read_seq as i64, deleted_seq as i64])?;
            Ok(())
        })
        .await
    }
}
