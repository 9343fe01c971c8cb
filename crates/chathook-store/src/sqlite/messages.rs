//! Channel history in the embedded store: appends (sequence numbers, de-duplication) and sync pages.

use async_trait::async_trait;
use chathook_events::Message;
use rusqlite::{params, Connection, OptionalExtension};

use super::writer::{Guard, WriteCtx};
use super::SqliteStore;
use crate::header::{header_bits, header_from_bits};
use crate::now_ms;
use crate::{
    AppendOutcome, EventsFor, Found, MessageLookup, MessageStore, NewMessage, PageBuilder,
    PullMode, StoreError, SyncPage, SyncQuery,
};

/// WuKongIM's person channel type.
const PERSON: u8 = 1;

pub(super) fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        message_seq: r.get::<_, i64>(0)? as u64,
        message_id: r.get(1)?,
        client_msg_no: r.get(2)?,
        from_uid: r.get(3)?,
        channel_id: r.get(4)?,
        channel_type: r.get(5)?,
        header: header_from_bits(r.get(6)?),
        setting: r.get(7)?,
        expire: r.get(8)?,
        timestamp: r.get(9)?,
        payload: r.get(10)?,
        sender: Default::default(),
    })
}

/// A channel's newest seq ever: of its stored messages, or the floor its deletions left.
const LAST_SEQ: &str = "SELECT MAX(
        (SELECT COALESCE(MAX(message_seq), 0) FROM messages WHERE channel_key = ?1 AND channel_type = ?2),
        (SELECT COALESCE(MAX(last_seq), 0) FROM channel_seq_floors WHERE channel_key = ?1 AND channel_type = ?2))";

/// The newest seq of channel `key`: the writer's cache, or the store's (loaded once).
fn last_seq(ctx: &WriteCtx<'_>, key: &(String, u8)) -> Result<u64, StoreError> {
    if let Some(s) = ctx.state.seqs.get(key) {
        return Ok(*s);
    }
    let last = ctx
        .conn
        .prepare_cached(LAST_SEQ)?
        .query_row(params![key.0, key.1], |r| r.get::<_, i64>(0))?;
    Ok(last as u64)
}

/// Stores `m` in the history of channel `channel_key`.
fn insert_history(conn: &Connection, channel_key: &str, m: &Message) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO messages(channel_key, channel_type, message_seq, message_id,
         client_msg_no, from_uid, channel_id, header, setting, expire, timestamp, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        channel_key,
        m.channel_type,
        m.message_seq as i64,
        m.message_id,
        m.client_msg_no,
        m.from_uid,
        m.channel_id,
        header_bits(&m.header),
        m.setting,
        m.expire,
        m.timestamp,
        m.payload
    ])?;
    Ok(())
}

/// A new person channel (its first message `m`): both users' conversation lists learn of it, once.
fn index_person_channel(
    conn: &Connection,
    channel_key: &str,
    m: &Message,
) -> Result<(), StoreError> {
    let mut index = conn.prepare_cached(
        "INSERT OR IGNORE INTO person_channels(uid, peer, channel_key) VALUES (?1, ?2, ?3)",
    )?;
    index.execute(params![m.from_uid, m.channel_id, channel_key])?;
    index.execute(params![m.channel_id, m.from_uid, channel_key])?;
    Ok(())
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn append_message(
        &self,
        message: NewMessage,
        dedup_window_secs: u64,
        events: EventsFor<Message>,
    ) -> Result<AppendOutcome, StoreError> {
        // Validated before it writes (the IM core checked the message): it can fail only when
        // storage does, so it needs no savepoint of its own.
        self.write_logged_guarded(Guard::Batch, move |ctx| {
            let now = now_ms();
            let now_secs = now / 1000;
            let key = (message.channel_key.clone(), message.channel_type);
            // A CMD message takes no place in channel history: it goes to its recipients' CMD queues.
            let cmd = message.header.sync_once && !message.header.no_persist;
            let seq = match message.header.no_persist || cmd {
                true => 0,
                false => last_seq(ctx, &key)? + 1,
            };
            let message_id = ctx.state.ids.next_at(now);
            if !message.client_msg_no.is_empty() {
                let found = super::client_keys::claim(
                    ctx.conn,
                    &message.from_uid,
                    &message.client_msg_no,
                    now_secs,
                    dedup_window_secs,
                    message_id,
                    seq,
                )?;
                if let Some(found) = found {
                    let first = AppendOutcome::Duplicate {
                        message_id: found.message_id,
                        message_seq: found.message_seq,
                        client_msg_no: message.client_msg_no,
                    };
                    return Ok((first, Vec::new()));
                }
            }
            let stored = Message {
                message_id,
                client_msg_no: message.client_msg_no,
                message_seq: seq,
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
                super::cmd_queue::enqueue(ctx.conn, &stored, &message.cmd_recipients)?;
            } else if !stored.header.no_persist {
                insert_history(ctx.conn, &key.0, &stored)?;
            }
            if seq == 1 && stored.channel_type == PERSON {
                index_person_channel(ctx.conn, &key.0, &stored)?;
            }
            let events = events(&stored);
            if seq != 0 {
                ctx.state.seqs.insert(key, seq);
            }
            Ok((AppendOutcome::Stored(stored), events))
        })
        .await
    }

    async fn sync(&self, query: SyncQuery) -> Result<SyncPage, StoreError> {
        self.read(move |conn| {
            let limit = query.limit.max(1);
            let fetch = (limit + 1) as i64;
            let start = query.start_seq as i64;
            let end = if query.end_seq == 0 {
                None
            } else {
                Some(query.end_seq as i64)
            };
            // Hidden: sync-once commands and expired messages.
            let visible = "(header & 4) = 0 AND (expire = 0 OR timestamp + expire > ?3)";
            let (sql, bound) = match query.pull_mode {
                PullMode::Up => (
                    format!(
                        "SELECT message_seq, message_id, client_msg_no, from_uid, channel_id, channel_type,
                         header, setting, expire, timestamp, payload FROM messages
                         WHERE channel_key = ?1 AND channel_type = ?2 AND {visible}
                         AND message_seq >= ?4 AND message_seq < ?5 ORDER BY message_seq ASC LIMIT ?6"
                    ),
                    end.unwrap_or(i64::MAX),
                ),
                PullMode::Down => (
                    format!(
                        "SELECT message_seq, message_id, client_msg_no, from_uid, channel_id, channel_type,
                         header, setting, expire, timestamp, payload FROM messages
                         WHERE channel_key = ?1 AND channel_type = ?2 AND {visible}
                         AND message_seq <= ?4 AND message_seq > ?5 ORDER BY message_seq DESC LIMIT ?6"
                    ),
                    end.unwrap_or(0),
                ),
            };
            let start = match (query.pull_mode, start) {
                (PullMode::Down, 0) => i64::MAX,
                (_, s) => s,
            };
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    query.channel_key,
                    query.channel_type,
                    query.now,
                    start,
                    bound,
                    fetch
                ],
                message_from_row,
            )?;
            let mut page = PageBuilder::new(&query);
            for row in rows {
                if !page.offer(row?) {
                    break;
                }
            }
            Ok(page.finish())
        })
        .await
    }

    async fn reserve_message_id(&self) -> Result<i64, StoreError> {
        self.write(|ctx| Ok(ctx.state.ids.next_at(now_ms()))).await
    }

    async fn last_seq(&self, channel_key: &str, channel_type: u8) -> Result<u64, StoreError> {
        let key = channel_key.to_string();
        self.read(move |conn| {
            let seq: i64 = conn
                .prepare_cached(LAST_SEQ)?
                .query_row(params![key, channel_type], |r| r.get(0))?;
            Ok(seq as u64)
        })
        .await
    }

    async fn find_messages(&self, lookup: MessageLookup) -> Result<SyncPage, StoreError> {
        self.read(move |conn| {
            const COLUMNS: &str =
                "SELECT message_seq, message_id, client_msg_no, from_uid, channel_id,
                channel_type, header, setting, expire, timestamp, payload FROM messages
                WHERE channel_key = ?1 AND channel_type = ?2";
            let mut found = Found::new(lookup.max_bytes);
            let mut keep = |m: Option<Message>| found.keep(m);
            let (key, ty) = (&lookup.channel_key, lookup.channel_type);
            let mut by_seq = conn.prepare_cached(&format!("{COLUMNS} AND message_seq = ?3"))?;
            for seq in &lookup.seqs {
                keep(
                    by_seq
                        .query_row(params![key, ty, *seq as i64], message_from_row)
                        .optional()?,
                );
            }
            let mut by_id =
                conn.prepare_cached(&format!("{COLUMNS} AND message_id = ?3 LIMIT 1"))?;
            for id in &lookup.message_ids {
                keep(
                    by_id
                        .query_row(params![key, ty, id], message_from_row)
                        .optional()?,
                );
            }
            let mut by_no =
                conn.prepare_cached(&format!("{COLUMNS} AND client_msg_no = ?3 LIMIT 1"))?;
            for no in &lookup.client_msg_nos {
                keep(
                    by_no
                        .query_row(params![key, ty, no], message_from_row)
                        .optional()?,
                );
            }
            Ok(found.finish())
        })
        .await
    }

    async fn delete_range(
        &self,
        channel_key: &str,
        channel_type: u8,
        start: u64,
        end: u64,
    ) -> Result<usize, StoreError> {
        let key = (channel_key.to_string(), channel_type);
        self.write(move |ctx| {
            // The channel's newest seq stays counted, so that deleting its end frees no seq.
            let last = match ctx.state.seqs.get(&key) {
                Some(s) => *s as i64,
                None => ctx
                    .conn
                    .prepare_cached(LAST_SEQ)?
                    .query_row(params![key.0, key.1], |r| r.get::<_, i64>(0))?,
            };
            ctx.conn
                .prepare_cached(
                    "INSERT INTO channel_seq_floors(channel_key, channel_type, last_seq) VALUES (?1, ?2, ?3)
                     ON CONFLICT (channel_key, channel_type) DO UPDATE
                     SET last_seq = MAX(last_seq, excluded.last_seq)",
                )?
                .execute(params![key.0, key.1, last])?;
            Ok(ctx
                .conn
                .prepare_cached(
                    "DELETE FROM messages WHERE channel_key = ?1 AND channel_type = ?2
                     AND message_seq BETWEEN ?3 AND ?4",
                )?
                .execute(params![key.0, key.1, start as i64, end as i64])?)
        })
        .await
    }
}
