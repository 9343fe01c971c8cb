//! The embedded store: one SQLite file in WAL mode, a single writer thread with group commits
//! (`writer`), and a small pool of read connections used from `spawn_blocking`.

mod schema;
mod webhook;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chathook_events::{
    Event, EventLog, EventLogError, LoggedEvent, Message, MessageHeader, StartAt,
};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot, watch};

pub use writer::WriterMetrics;
use writer::{in_savepoint, now_ms, Job, WriteCtx, WriterState};

use crate::*;

/// Prepared statements the write connection keeps.
const WRITER_STATEMENTS: usize = 128;

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Directory that holds `chathook.db` (created if missing).
    pub data_dir: PathBuf,
    /// Node id encoded in message ids.
    pub node_id: u16,
    /// Most jobs committed in one transaction.
    pub max_batch: usize,
    /// Jobs that may wait for the writer before callers wait for room.
    pub queue_capacity: usize,
}

impl SqliteOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        SqliteOptions {
            data_dir: data_dir.into(),
            node_id: 1,
            max_batch: 2048,
            queue_capacity: 16_384,
        }
    }
}

/// The embedded implementation of every storage trait.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: mpsc::Sender<Job>,
    head: watch::Receiver<u64>,
    readers: Mutex<Vec<Connection>>,
    metrics: WriterMetrics,
}

impl SqliteStore {
    /// Opens (or creates) the store and starts its writer thread.
    pub fn open(options: SqliteOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&options.data_dir)
            .map_err(|e| StoreError::Unwritable(format!("{}: {e}", options.data_dir.display())))?;
        let path = options.data_dir.join("chathook.db");
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;
             PRAGMA busy_timeout=5000;",
        )?;
        // The writer runs every job's statements; the default cache (16) would evict some each batch.
        conn.set_prepared_statement_cache_capacity(WRITER_STATEMENTS);
        schema::migrate(&conn)?;
        // A read-only file or directory opens and reads fine; find out now, not at the first send.
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
        let last_id: i64 = conn.query_row(
            "SELECT COALESCE(MAX(message_id), 0) FROM messages",
            [],
            |r| r.get(0),
        )?;
        let last_dedup_id: i64 = conn.query_row(
            "SELECT COALESCE(MAX(message_id), 0) FROM client_msgs",
            [],
            |r| r.get(0),
        )?;
        let head: i64 =
            conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
                r.get(0)
            })?;
        let head = head.max(schema::sequence_of(&conn, "events")?) as u64;
        let (head_tx, head_rx) = watch::channel(head);
        let (jobs_tx, jobs_rx) = mpsc::channel(options.queue_capacity.max(1));
        let state = WriterState {
            seqs: Default::default(),
            ids: Snowflake::new(options.node_id, last_id.max(last_dedup_id)),
            pending_head: None,
        };
        let metrics = WriterMetrics::default();
        let writer_metrics = metrics.clone();
        let max_batch = options.max_batch.max(1);
        std::thread::Builder::new()
            .name("chathook-writer".into())
            .spawn(move || writer::run(conn, state, jobs_rx, head_tx, max_batch, writer_metrics))
            .map_err(|e| StoreError::Storage(format!("cannot start the writer: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                jobs: jobs_tx,
                head: head_rx,
                readers: Mutex::new(Vec::new()),
                metrics,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The writer's counters.
    pub fn metrics(&self) -> WriterMetrics {
        self.inner.metrics.clone()
    }

    /// Runs `job` on the writer inside its own savepoint and waits for the durable commit.
    async fn write<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        let boxed: Job = Box::new(move |ctx| {
            let result = in_savepoint(ctx, job);
            Box::new(move |committed| {
                let _ = tx.send(committed.and(result));
            })
        });
        self.inner
            .jobs
            .send(boxed)
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await
            .map_err(|_| StoreError::Unwritable("the write transaction could not begin".into()))?
    }

    /// Runs `f` on a pooled read connection off the async threads.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => {
                    let c = Connection::open(&inner.path)?;
                    c.execute_batch("PRAGMA busy_timeout=5000;")?;
                    c
                }
            };
            let result = f(&conn);
            if let Ok(mut pool) = inner.readers.lock() {
                if pool.len() < 8 {
                    pool.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Storage(format!("read task failed: {e}")))?
    }

    /// Deletes idempotency keys older than `dedup_window_secs` and events older than
    /// `event_retention_ms` that every registered consumer has acknowledged. Returns (keys, events) removed.
    pub async fn prune(
        &self,
        dedup_window_secs: u64,
        event_retention_ms: i64,
    ) -> Result<(usize, usize), StoreError> {
        self.write(move |ctx| {
            let now = now_ms();
            let keys = ctx.conn.execute(
                "DELETE FROM client_msgs WHERE created_at < ?1",
                params![now / 1000 - dedup_window_secs as i64],
            )?;
            let min_acked: Option<i64> =
                ctx.conn
                    .query_row("SELECT MIN(position) FROM consumers", [], |r| r.get(0))?;
            let events = ctx.conn.execute(
                "DELETE FROM events WHERE at_ms < ?1 AND position <= ?2",
                params![now - event_retention_ms, min_acked.unwrap_or(i64::MAX)],
            )?;
            Ok((keys, events))
        })
        .await
    }
}

fn header_bits(h: &MessageHeader) -> i64 {
    i64::from(h.no_persist) | i64::from(h.red_dot) << 1 | i64::from(h.sync_once) << 2
}

fn header_from_bits(bits: i64) -> MessageHeader {
    MessageHeader {
        no_persist: bits & 1 != 0,
        red_dot: bits & 2 != 0,
        sync_once: bits & 4 != 0,
    }
}

fn load_channel(
    conn: &Connection,
    id: &str,
    channel_type: u8,
) -> Result<Option<ChannelRecord>, StoreError> {
    let flags = conn
        .prepare_cached(
            "SELECT large, ban, disband, live FROM channels WHERE channel_id = ?1 AND channel_type = ?2",
        )?
        .query_row(params![id, channel_type], |r| {
            Ok(ChannelFlags {
                channel_id: id.to_string(),
                channel_type,
                large: r.get(0)?,
                ban: r.get(1)?,
                disband: r.get(2)?,
                live: r.get(3)?,
            })
        })
        .optional()?;
    let Some(flags) = flags else { return Ok(None) };
    let subscribers = uid_list(conn, "subscribers", id, channel_type)?;
    let blacklist = uid_list(conn, "blacklist", id, channel_type)?;
    Ok(Some(ChannelRecord {
        flags,
        subscribers,
        blacklist,
    }))
}

fn uid_list(
    conn: &Connection,
    table: &str,
    id: &str,
    channel_type: u8,
) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "SELECT uid FROM {table} WHERE channel_id = ?1 AND channel_type = ?2 ORDER BY rowid"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![id, channel_type], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Applies a subscriber change; returns (added, removed).
fn apply_subscribers(
    conn: &Connection,
    id: &str,
    channel_type: u8,
    change: &SubscriberChange,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let before = uid_list(conn, "subscribers", id, channel_type)?;
    let mut added = Vec::new();
    let mut removed = Vec::new();
    match change {
        SubscriberChange::Add { uids, reset } => {
            if *reset {
                conn.execute(
                    "DELETE FROM subscribers WHERE channel_id = ?1 AND channel_type = ?2",
                    params![id, channel_type],
                )?;
                removed = before
                    .iter()
                    .filter(|u| !uids.contains(u))
                    .cloned()
                    .collect();
            }
            let mut insert = conn.prepare_cached(
                "INSERT OR IGNORE INTO subscribers(channel_id, channel_type, uid) VALUES (?1, ?2, ?3)",
            )?;
            for uid in uids {
                let fresh = insert.execute(params![id, channel_type, uid])? > 0;
                if fresh && !before.contains(uid) && !added.contains(uid) {
                    added.push(uid.clone());
                }
            }
        }
        SubscriberChange::Remove { uids } => {
            let mut delete = conn.prepare_cached(
                "DELETE FROM subscribers WHERE channel_id = ?1 AND channel_type = ?2 AND uid = ?3",
            )?;
            for uid in uids {
                if delete.execute(params![id, channel_type, uid])? > 0 {
                    removed.push(uid.clone());
                }
            }
        }
    }
    Ok((added, removed))
}

fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
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
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn set_token(&self, token: TokenRecord) -> Result<(), StoreError> {
        self.write(move |ctx| {
            ctx.conn.execute(
                "INSERT INTO tokens(uid, device_flag, token_hash, device_level) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(uid, device_flag) DO UPDATE SET token_hash = excluded.token_hash,
                 device_level = excluded.device_level",
                params![token.uid, token.device_flag, token.token_hash, token.device_level],
            )?;
            Ok(())
        })
        .await
    }

    async fn token(&self, uid: &str, device_flag: u8) -> Result<Option<TokenRecord>, StoreError> {
        let uid = uid.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT token_hash, device_level FROM tokens WHERE uid = ?1 AND device_flag = ?2",
                )?
                .query_row(params![uid, device_flag], |r| {
                    Ok(TokenRecord {
                        uid: uid.clone(),
                        device_flag,
                        token_hash: r.get(0)?,
                        device_level: r.get(1)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn remove_tokens(&self, uid: &str, device_flag: Option<u8>) -> Result<(), StoreError> {
        let uid = uid.to_string();
        self.write(move |ctx| {
            match device_flag {
                Some(flag) => ctx.conn.execute(
                    "DELETE FROM tokens WHERE uid = ?1 AND device_flag = ?2",
                    params![uid, flag],
                )?,
                None => ctx
                    .conn
                    .execute("DELETE FROM tokens WHERE uid = ?1", params![uid])?,
            };
            Ok(())
        })
        .await
    }

    async fn profile(&self, uid: &str) -> Result<Option<Profile>, StoreError> {
        let uid = uid.to_string();
        self.read(move |conn| {
            let row = conn
                .prepare_cached("SELECT name, avatar, custom FROM profiles WHERE uid = ?1")?
                .query_row(params![uid], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .optional()?;
            row.map(|(name, avatar, custom)| {
                let custom = serde_json::from_str(&custom)
                    .map_err(|e| StoreError::Corrupt(format!("profile of {uid}: {e}")))?;
                Ok(Profile {
                    uid: uid.clone(),
                    name,
                    avatar,
                    custom,
                })
            })
            .transpose()
        })
        .await
    }

    async fn set_profile(
        &self,
        profile: Profile,
        events: EventsFor<Profile>,
    ) -> Result<(), StoreError> {
        self.write(move |ctx| {
            let custom = serde_json::to_string(&profile.custom)
                .map_err(|e| StoreError::Storage(e.to_string()))?;
            ctx.conn.execute(
                "INSERT INTO profiles(uid, name, avatar, custom) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(uid) DO UPDATE SET name = excluded.name, avatar = excluded.avatar,
                 custom = excluded.custom",
                params![profile.uid, profile.name, profile.avatar, custom],
            )?;
            let head = ctx.append_events(&events(&profile))?;
            ctx.note_head(head);
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl ChannelStore for SqliteStore {
    async fn channel(
        &self,
        id: &str,
        channel_type: u8,
    ) -> Result<Option<ChannelRecord>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| load_channel(conn, &id, channel_type))
            .await
    }

    async fn live_channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        self.read(|conn| {
            let ids = conn
                .prepare("SELECT channel_id, channel_type FROM channels WHERE live = 1")?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u8>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for (id, ty) in ids {
                if let Some(ch) = load_channel(conn, &id, ty)? {
                    out.push(ch);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn upsert_channel(
        &self,
        flags: ChannelFlags,
        subscribers: SubscriberChange,
        events: EventsFor<ChannelDiff>,
    ) -> Result<ChannelDiff, StoreError> {
        self.write(move |ctx| {
            let before = load_channel(ctx.conn, &flags.channel_id, flags.channel_type)?;
            ctx.conn.execute(
                "INSERT INTO channels(channel_id, channel_type, large, ban, disband, live)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(channel_id, channel_type) DO UPDATE SET large = excluded.large,
                 ban = excluded.ban, disband = excluded.disband, live = excluded.live",
                params![
                    flags.channel_id,
                    flags.channel_type,
                    flags.large,
                    flags.ban,
                    flags.disband,
                    flags.live
                ],
            )?;
            let (added, removed) = apply_subscribers(
                ctx.conn,
                &flags.channel_id,
                flags.channel_type,
                &subscribers,
            )?;
            let channel = load_channel(ctx.conn, &flags.channel_id, flags.channel_type)?
                .ok_or_else(|| StoreError::Storage("channel vanished during upsert".into()))?;
            let diff = ChannelDiff {
                created: before.is_none(),
                dismissed: flags.disband && !before.as_ref().is_some_and(|b| b.flags.disband),
                added,
                removed,
                channel,
            };
            let head = ctx.append_events(&events(&diff))?;
            ctx.note_head(head);
            Ok(diff)
        })
        .await
    }

    async fn change_subscribers(
        &self,
        id: &str,
        channel_type: u8,
        change: SubscriberChange,
        events: EventsFor<ChannelDiff>,
    ) -> Result<Option<ChannelDiff>, StoreError> {
        let id = id.to_string();
        self.write(move |ctx| {
            if load_channel(ctx.conn, &id, channel_type)?.is_none() {
                return Ok(None);
            }
            let (added, removed) = apply_subscribers(ctx.conn, &id, channel_type, &change)?;
            let channel = load_channel(ctx.conn, &id, channel_type)?
                .ok_or_else(|| StoreError::Storage("channel vanished".into()))?;
            let diff = ChannelDiff {
                created: false,
                dismissed: false,
                added,
                removed,
                channel,
            };
            let head = ctx.append_events(&events(&diff))?;
            ctx.note_head(head);
            Ok(Some(diff))
        })
        .await
    }

    async fn change_blacklist(
        &self,
        id: &str,
        channel_type: u8,
        change: ListChange,
    ) -> Result<Option<ChannelRecord>, StoreError> {
        let id = id.to_string();
        self.write(move |ctx| {
            if load_channel(ctx.conn, &id, channel_type)?.is_none() {
                return Ok(None);
            }
            let (uids, delete) = match &change {
                ListChange::Add(u) => (u, false),
                ListChange::Remove(u) => (u, true),
                ListChange::Set(u) => {
                    ctx.conn.execute(
                        "DELETE FROM blacklist WHERE channel_id = ?1 AND channel_type = ?2",
                        params![id, channel_type],
                    )?;
                    (u, false)
                }
            };
            let sql = if delete {
                "DELETE FROM blacklist WHERE channel_id = ?1 AND channel_type = ?2 AND uid = ?3"
            } else {
                "INSERT OR IGNORE INTO blacklist(channel_id, channel_type, uid) VALUES (?1, ?2, ?3)"
            };
            let mut stmt = ctx.conn.prepare_cached(sql)?;
            for uid in uids {
                stmt.execute(params![id, channel_type, uid])?;
            }
            load_channel(ctx.conn, &id, channel_type)
        })
        .await
    }

    async fn delete_channel(
        &self,
        id: &str,
        channel_type: u8,
        events: EventsFor<ChannelRecord>,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |ctx| {
            let Some(before) = load_channel(ctx.conn, &id, channel_type)? else {
                return Ok(false);
            };
            for table in ["channels", "subscribers", "blacklist"] {
                ctx.conn.execute(
                    &format!("DELETE FROM {table} WHERE channel_id = ?1 AND channel_type = ?2"),
                    params![id, channel_type],
                )?;
            }
            let head = ctx.append_events(&events(&before))?;
            ctx.note_head(head);
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn append_message(
        &self,
        message: NewMessage,
        dedup_window_secs: u64,
        events: EventsFor<Message>,
    ) -> Result<AppendOutcome, StoreError> {
        self.write(move |ctx| {
            let now = now_ms();
            let now_secs = now / 1000;
            let key = (message.channel_key.clone(), message.channel_type);
            let seq = if message.header.no_persist {
                0
            } else {
                let last = match ctx.state.seqs.get(&key) {
                    Some(s) => *s,
                    None => ctx
                        .conn
                        .prepare_cached(
                            "SELECT COALESCE(MAX(message_seq), 0) FROM messages
                             WHERE channel_key = ?1 AND channel_type = ?2",
                        )?
                        .query_row(params![key.0, key.1], |r| r.get::<_, i64>(0))?
                        as u64,
                };
                last + 1
            };
            let message_id = ctx.state.ids.next_at(now);
            if !message.client_msg_no.is_empty() {
                // Insert first: a key still inside the window is left alone (0 rows changed), and only
                // then is the earlier message looked up. One statement per message in the common case.
                let claimed = ctx
                    .conn
                    .prepare_cached(
                        "INSERT INTO client_msgs(from_uid, client_msg_no, created_at, message_id, message_seq)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT(from_uid, client_msg_no) DO UPDATE SET created_at = excluded.created_at,
                           message_id = excluded.message_id, message_seq = excluded.message_seq
                         WHERE client_msgs.created_at < ?6",
                    )?
                    .execute(params![
                        message.from_uid,
                        message.client_msg_no,
                        now_secs,
                        message_id,
                        seq as i64,
                        now_secs - dedup_window_secs as i64
                    ])?;
                if claimed == 0 {
                    let (message_id, seq) = ctx
                        .conn
                        .prepare_cached(
                            "SELECT message_id, message_seq FROM client_msgs
                             WHERE from_uid = ?1 AND client_msg_no = ?2",
                        )?
                        .query_row(params![message.from_uid, message.client_msg_no], |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                        })?;
                    return Ok(AppendOutcome::Duplicate {
                        message_id,
                        message_seq: seq as u64,
                        client_msg_no: message.client_msg_no,
                    });
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
            };
            if !stored.header.no_persist {
                ctx.conn
                    .prepare_cached(
                        "INSERT INTO messages(channel_key, channel_type, message_seq, message_id,
                         client_msg_no, from_uid, channel_id, header, setting, expire, timestamp, payload)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    )?
                    .execute(params![
                        key.0,
                        key.1,
                        seq as i64,
                        stored.message_id,
                        stored.client_msg_no,
                        stored.from_uid,
                        stored.channel_id,
                        header_bits(&stored.header),
                        stored.setting,
                        stored.expire,
                        stored.timestamp,
                        stored.payload
                    ])?;
            }
            let head = ctx.append_events(&events(&stored))?;
            ctx.note_head(head);
            if !stored.header.no_persist {
                ctx.state.seqs.insert(key, seq);
            }
            Ok(AppendOutcome::Stored(stored))
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
            let mut messages = stmt
                .query_map(
                    params![
                        query.channel_key,
                        query.channel_type,
                        query.now,
                        start,
                        bound,
                        fetch
                    ],
                    message_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            let more = messages.len() > limit;
            messages.truncate(limit);
            if query.pull_mode == PullMode::Down {
                messages.reverse();
            }
            Ok(SyncPage { messages, more })
        })
        .await
    }
}

#[async_trait]
impl PresenceStore for SqliteStore {
    async fn record_online(&self, conn: ConnRecord, events: Vec<Event>) -> Result<(), StoreError> {
        self.write(move |ctx| {
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
            let head = ctx.append_events(&events)?;
            ctx.note_head(head);
            Ok(())
        })
        .await
    }

    async fn record_offline(&self, conn_id: u64, events: Vec<Event>) -> Result<(), StoreError> {
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached("DELETE FROM connections WHERE conn_id = ?1")?
                .execute(params![conn_id as i64])?;
            let head = ctx.append_events(&events)?;
            ctx.note_head(head);
            Ok(())
        })
        .await
    }

    async fn recover_connections(
        &self,
        events: EventsFor<Vec<ConnRecord>>,
    ) -> Result<Vec<ConnRecord>, StoreError> {
        self.write(move |ctx| {
            let conns = ctx
                .conn
                .prepare("SELECT conn_id, uid, device_flag, connected_at FROM connections ORDER BY conn_id")?
                .query_map([], |r| {
                    Ok(ConnRecord {
                        conn_id: r.get::<_, i64>(0)? as u64,
                        uid: r.get(1)?,
                        device_flag: r.get(2)?,
                        connected_at_ms: r.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            ctx.conn.execute("DELETE FROM connections", [])?;
            let head = ctx.append_events(&events(&conns))?;
            ctx.note_head(head);
            Ok(conns)
        })
        .await
    }
}

fn log_err(e: StoreError) -> EventLogError {
    EventLogError::Storage(e.to_string())
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn append(&self, events: Vec<Event>) -> Result<u64, EventLogError> {
        self.write(move |ctx| {
            let head = ctx.append_events(&events)?;
            ctx.note_head(head);
            Ok(head)
        })
        .await
        .map(|h| h.unwrap_or_else(|| self.head()))
        .map_err(log_err)
    }

    async fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, EventLogError> {
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT position, at_ms, body FROM events WHERE position > ?1 ORDER BY position LIMIT ?2",
                )?;
                let rows = stmt
                    .query_map(params![after as i64, limit as i64], |r| {
                        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
            .map_err(log_err)?;
        rows.into_iter()
            .map(|(position, at_ms, body)| {
                let event = serde_json::from_str(&body).map_err(|e| EventLogError::Corrupt {
                    position,
                    reason: e.to_string(),
                })?;
                Ok(LoggedEvent {
                    position,
                    at_ms,
                    event,
                })
            })
            .collect()
    }

    async fn register_consumer(&self, name: &str, start: StartAt) -> Result<u64, EventLogError> {
        let name = name.to_string();
        self.write(move |ctx| {
            let existing: Option<i64> = ctx
                .conn
                .query_row(
                    "SELECT position FROM consumers WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(p) = existing {
                return Ok(p as u64);
            }
            let position: i64 = match start {
                StartAt::Beginning => 0,
                StartAt::Head => ctx.conn.query_row(
                    "SELECT COALESCE(MAX(position), 0) FROM events",
                    [],
                    |r| r.get(0),
                )?,
            };
            ctx.conn.execute(
                "INSERT INTO consumers(name, position) VALUES (?1, ?2)",
                params![name, position],
            )?;
            Ok(position as u64)
        })
        .await
        .map_err(log_err)
    }

    async fn remove_consumer(&self, name: &str) -> Result<(), EventLogError> {
        let name = name.to_string();
        self.write(move |ctx| {
            ctx.conn
                .execute("DELETE FROM consumers WHERE name = ?1", params![name])?;
            Ok(())
        })
        .await
        .map_err(log_err)
    }

    async fn ack(&self, name: &str, position: u64) -> Result<(), EventLogError> {
        let name = name.to_string();
        let updated = self
            .write({
                let name = name.clone();
                move |ctx| {
                    Ok(ctx.conn.execute(
                        "UPDATE consumers SET position = MAX(position, ?2) WHERE name = ?1",
                        params![name, position as i64],
                    )?)
                }
            })
            .await
            .map_err(log_err)?;
        if updated == 0 {
            return Err(EventLogError::UnknownConsumer(name));
        }
        Ok(())
    }

    async fn consumer_position(&self, name: &str) -> Result<u64, EventLogError> {
        let name = name.to_string();
        let found = self
            .read({
                let name = name.clone();
                move |conn| {
                    Ok(conn
                        .query_row(
                            "SELECT position FROM consumers WHERE name = ?1",
                            params![name],
                            |r| r.get::<_, i64>(0),
                        )
                        .optional()?)
                }
            })
            .await
            .map_err(log_err)?;
        found
            .map(|p| p as u64)
            .ok_or(EventLogError::UnknownConsumer(name))
    }

    fn head(&self) -> u64 {
        *self.inner.head.borrow()
    }

    async fn wait_beyond(&self, position: u64) {
        let mut rx = self.inner.head.clone();
        let _ = rx.wait_for(|h| *h > position).await;
    }
}
