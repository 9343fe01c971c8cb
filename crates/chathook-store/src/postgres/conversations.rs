//! Conversation lists in PostgreSQL, made as in the embedded store: a user's conversations are the
//! groups they subscribe to and the person channels they have history in; the last message and the
//! unread count are read at sync time from history and the user's read and delete positions.

use async_trait::async_trait;
use tokio_postgres::GenericClient;

use super::messages::{message_from_row, MESSAGE_COLUMNS};
use super::{pg_error, PgStore};
use crate::{ConversationRecord, ConversationStore, StoreError};

async fn record(
    c: &impl GenericClient,
    uid: &str,
    channel_key: String,
    channel_id: String,
    channel_type: u8,
) -> Result<ConversationRecord, StoreError> {
    let ty = i16::from(channel_type);
    let last = c
        .query_opt(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE channel_key = $1 AND channel_type = $2
                 ORDER BY message_seq DESC LIMIT 1"
            ),
            &[&channel_key, &ty],
        )
        .await
        .map_err(pg_error)?
        .map(|r| message_from_row(&r));
    let (read_seq, deleted_seq) = c
        .query_opt(
            "SELECT read_seq, deleted_seq FROM conversation_state
             WHERE uid = $1 AND channel_key = $2 AND channel_type = $3",
            &[&uid, &channel_key, &ty],
        )
        .await
        .map_err(pg_error)?
        .map_or((0, 0), |r| {
            (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64)
        });
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
impl ConversationStore for PgStore {
    async fn conversations(&self, uid: &str) -> Result<Vec<ConversationRecord>, StoreError> {
        let client = self.client().await?;
        let c = &**client;
        let groups = c
            .query(
                "SELECT channel_id, channel_type FROM subscribers WHERE uid = $1 ORDER BY seq",
                &[&uid],
            )
            .await
            .map_err(pg_error)?;
        let people = c
            .query(
                "SELECT peer, channel_key FROM person_channels WHERE uid = $1",
                &[&uid],
            )
            .await
            .map_err(pg_error)?;
        let mut out = Vec::with_capacity(groups.len() + people.len());
        for row in groups {
            let (id, ty): (String, i16) = (row.get(0), row.get(1));
            out.push(record(c, uid, id.clone(), id, ty as u8).await?);
        }
        for row in people {
            out.push(record(c, uid, row.get(1), row.get(0), 1).await?);
        }
        Ok(out)
    }

    async fn own_last_seq(
        &self,
        channel_key: &str,
        channel_type: u8,
        uid: &str,
        after: u64,
        scan_max: usize,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT MAX(message_seq) FROM (SELECT message_seq, from_uid FROM messages
                 WHERE channel_key = $1 AND channel_type = $2 AND message_seq > $3
                 ORDER BY message_seq DESC LIMIT $4) newest WHERE from_uid = $5",
                &[
                    &channel_key,
                    &i16::from(channel_type),
                    &(after as i64),
                    &(scan_max as i64),
                    &uid,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.get::<_, Option<i64>>(0).unwrap_or(0) as u64)
    }

    async fn mark_conversation(
        &self,
        uid: &str,
        channel_key: &str,
        channel_type: u8,
        read_seq: u64,
        deleted_seq: u64,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO conversation_state(uid, channel_key, channel_type, read_seq, deleted_seq)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (uid, channel_key, channel_type) DO UPDATE SET
               read_seq = GREATEST(conversation_state.read_seq, excluded.read_seq),
               deleted_seq = GREATEST(conversation_state.deleted_seq, excluded.deleted_seq)",
            vec![
                Box::new(uid.to_string()),
                Box::new(channel_key.to_string()),
                Box::new(i16::from(channel_type)),
                Box::new(read_seq as i64),
                Box::new(deleted_seq as i64),
            ],
        )
        .await?;
        Ok(())
    }
}
