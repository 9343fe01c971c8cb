//! Channel history in PostgreSQL: appends (sequence numbers, de-duplication) and reads. An append locks
//! its channel's `channel_seqs` row, so senders of one channel on different nodes take turns and the
//! channel's seqs stay gap-free and increasing; other channels never wait.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chathook_events::Message;
use tokio_postgres::{GenericClient, Row};

use super::{pg_error, PgStore};
use crate::header::{header_bits, header_from_bits};
use crate::{
    AppendOutcome, EventsFor, MessageLookup, MessageStore, NewMessage, PullMode, Snowflake,
    StoreError, SyncPage, SyncQuery,
};

/// WuKongIM's person channel type.
const PERSON: u8 = 1;

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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Locks the channel's seq row (creating it at 0) and returns its last seq.
async fn lock_last_seq(
    c: &impl GenericClient,
    key: &str,
    channel_type: i16,
) -> Result<i64, StoreError> {
    c.execute(
        "INSERT INTO channel_seqs(channel_key, channel_type, last_seq) VALUES ($1, $2, 0)
         ON CONFLICT DO NOTHING",
        &[&key, &channel_type],
    )
    .await
    .map_err(pg_error)?;
    let row = c
        .query_one(
            "SELECT last_seq FROM channel_seqs WHERE channel_key = $1 AND channel_type = $2 FOR UPDATE",
            &[&key, &channel_type],
        )
        .await
        .map_err(pg_error)?;
    Ok(row.get(0))
}

#[async_trait]
impl MessageStore for PgStore {
    async fn append_message(
        &self,
        message: NewMessage,
        dedup_window_secs: u64,
        events: EventsFor<Message>,
    ) -> Result<AppendOutcome, StoreError> {
        let ids = self.ids.clone();
        self.write_with(move |tx| {
            Box::pin(async move {
                let now_secs = now_ms() / 1000;
                let ty = i16::from(message.channel_type);
                // A CMD message takes no place in channel history: it goes to its recipients' queues.
                let cmd = message.header.sync_once && !message.header.no_persist;
                let seq = if message.header.no_persist || cmd {
                    0
                } else {
                    lock_last_seq(tx, &message.channel_key, ty).await? + 1
                };
                let message_id = next_id(&ids);
                if !message.client_msg_no.is_empty() {
                    // A key still inside the window is left alone (no row changed): the earlier message
                    // answers.
                    let claimed = tx
                        .execute(
                            "INSERT INTO client_msgs(from_uid, client_msg_no, created_at, message_id, message_seq)
                             VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (from_uid, client_msg_no) DO UPDATE SET
                               created_at = excluded.created_at, message_id = excluded.message_id,
                               message_seq = excluded.message_seq
                             WHERE client_msgs.created_at < $6",
                            &[
                                &message.from_uid,
                                &message.client_msg_no,
                                &now_secs,
                                &message_id,
                                &seq,
                                &(now_secs - dedup_window_secs as i64),
                            ],
                        )
                        .await
                        .map_err(pg_error)?;
                    if claimed == 0 {
                        let row = tx
                            .query_one(
                                "SELECT message_id, message_seq FROM client_msgs
                                 WHERE from_uid = $1 AND client_msg_no = $2",
                                &[&message.from_uid, &message.client_msg_no],
                            )
                            .await
                            .map_err(pg_error)?;
                        let first = AppendOutcome::Duplicate {
                            message_id: row.get(0),
                            message_seq: row.get::<_, i64>(1) as u64,
                            client_msg_no: message.client_msg_no,
                        };
                        return Ok((first, Vec::new()));
                    }
                }
                let key = message.channel_key;
                let stored = Message {
                    message_id,
                    client_msg_no: message.client_msg_no,
                    message_seq: seq as u64,
                    from_uid: message.from_uid,
                    channel_id: message.channel_id,
                    channel_type: message.channel_type,
                    header: message.header,
                    setting: message.setting,
                    expire: message.expire,
                    timestamp: now_secs,
                    payload: message.payload,
                    sender: Default::default(),
                };
                if cmd {
                    super::cmd_queue::enqueue(tx, &stored, &message.cmd_recipients).await?;
                } else if !stored.header.no_persist {
                    tx.execute(
                        "INSERT INTO messages(channel_key, channel_type, message_seq, message_id,
                         client_msg_no, from_uid, channel_id, header, setting, expire, timestamp, payload)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                        &[
                            &key,
                            &ty,
                            &seq,
                            &stored.message_id,
                            &stored.client_msg_no,
                            &stored.from_uid,
                            &stored.channel_id,
                            &(header_bits(&stored.header) as i16),
                            &i16::from(stored.setting),
                            &i64::from(stored.expire),
                            &stored.timestamp,
                            &stored.payload,
                        ],
                    )
                    .await
                    .map_err(pg_error)?;
                    tx.execute(
                        "UPDATE channel_seqs SET last_seq = $3 WHERE channel_key = $1 AND channel_type = $2",
                        &[&key, &ty, &seq],
                    )
                    .await
                    .map_err(pg_error)?;
                }
                if seq == 1 && stored.channel_type == PERSON {
                    // A new person channel: both users' conversation lists learn of it, once.
                    for (uid, peer) in [
                        (&stored.from_uid, &stored.channel_id),
                        (&stored.channel_id, &stored.from_uid),
                    ] {
                        tx.execute(
                            "INSERT INTO person_channels(uid, peer, channel_key) VALUES ($1, $2, $3)
                             ON CONFLICT DO NOTHING",
                            &[uid, peer, &key],
                        )
                        .await
                        .map_err(pg_error)?;
                    }
                }
                let caused = events(&stored);
                Ok((AppendOutcome::Stored(stored), caused))
            })
        })
        .await
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
        let rows = client
            .query(
                &sql,
                &[
                    &query.channel_key,
                    &i16::from(query.channel_type),
                    &query.now,
                    &start,
                    &bound,
                    &fetch,
                ],
            )
            .await
            .map_err(pg_error)?;
        let mut messages: Vec<Message> = rows.iter().map(message_from_row).collect();
        let more = messages.len() > limit;
        messages.truncate(limit);
        if query.pull_mode == PullMode::Down {
            messages.reverse();
        }
        Ok(SyncPage { messages, more })
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

    async fn find_messages(&self, lookup: MessageLookup) -> Result<Vec<Message>, StoreError> {
        let client = self.client().await?;
        let (key, ty) = (&lookup.channel_key, i16::from(lookup.channel_type));
        let mut found: Vec<Message> = Vec::new();
        let mut keep = |rows: Vec<Row>| {
            for m in rows.iter().map(message_from_row) {
                if !found.iter().any(|f| f.message_id == m.message_id) {
                    found.push(m);
                }
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
        Ok(found)
    }
}

/// The message id generator of a node, shared by its writer's jobs.
pub(super) fn ids(node_id: u16) -> Arc<Mutex<Snowflake>> {
    Arc::new(Mutex::new(Snowflake::new(node_id, 0)))
}
