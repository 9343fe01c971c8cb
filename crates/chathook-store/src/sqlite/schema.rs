//! The tables of the embedded store, created on open.

use rusqlite::{Connection, OptionalExtension};

use crate::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    uid TEXT NOT NULL, device_flag INTEGER NOT NULL, token_hash BLOB NOT NULL, device_level INTEGER NOT NULL,
    PRIMARY KEY (uid, device_flag)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS system_uids (uid TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS profiles (
    uid TEXT PRIMARY KEY, name TEXT NOT NULL, avatar TEXT NOT NULL, custom TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS channels (
    channel_id TEXT NOT NULL, channel_type INTEGER NOT NULL, large INTEGER NOT NULL, ban INTEGER NOT NULL,
    disband INTEGER NOT NULL, live INTEGER NOT NULL, PRIMARY KEY (channel_id, channel_type)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscribers (
    channel_id TEXT NOT NULL, channel_type INTEGER NOT NULL, uid TEXT NOT NULL,
    UNIQUE (channel_id, channel_type, uid));
CREATE INDEX IF NOT EXISTS subscribers_uid ON subscribers(uid);
CREATE TABLE IF NOT EXISTS person_channels (
    uid TEXT NOT NULL, peer TEXT NOT NULL, channel_key TEXT NOT NULL,
    PRIMARY KEY (uid, peer)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversation_state (
    uid TEXT NOT NULL, channel_key TEXT NOT NULL, channel_type INTEGER NOT NULL,
    read_seq INTEGER NOT NULL, deleted_seq INTEGER NOT NULL,
    PRIMARY KEY (uid, channel_key, channel_type)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blacklist (
    channel_id TEXT NOT NULL, channel_type INTEGER NOT NULL, uid TEXT NOT NULL,
    UNIQUE (channel_id, channel_type, uid));
CREATE TABLE IF NOT EXISTS whitelist (
    channel_id TEXT NOT NULL, channel_type INTEGER NOT NULL, uid TEXT NOT NULL,
    UNIQUE (channel_id, channel_type, uid));
CREATE TABLE IF NOT EXISTS messages (
    channel_key TEXT NOT NULL, channel_type INTEGER NOT NULL, message_seq INTEGER NOT NULL,
    message_id INTEGER NOT NULL, client_msg_no TEXT NOT NULL, from_uid TEXT NOT NULL,
    channel_id TEXT NOT NULL, header INTEGER NOT NULL, setting INTEGER NOT NULL, expire INTEGER NOT NULL,
    timestamp INTEGER NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (channel_key, channel_type, message_seq)) WITHOUT ROWID;
-- The newest seq a channel had when messages were deleted from its end: the next seq comes after it.
CREATE TABLE IF NOT EXISTS channel_seq_floors (
    channel_key TEXT NOT NULL, channel_type INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    PRIMARY KEY (channel_key, channel_type)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_msg_keys (
    bucket INTEGER NOT NULL, from_uid TEXT NOT NULL, client_msg_no TEXT NOT NULL,
    created_at INTEGER NOT NULL, message_id INTEGER NOT NULL, message_seq INTEGER NOT NULL,
    PRIMARY KEY (bucket, from_uid, client_msg_no)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cmd_queue (
    position INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL, message_id INTEGER NOT NULL,
    client_msg_no TEXT NOT NULL, from_uid TEXT NOT NULL, channel_id TEXT NOT NULL,
    channel_type INTEGER NOT NULL, header INTEGER NOT NULL, setting INTEGER NOT NULL,
    expire INTEGER NOT NULL, timestamp INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS cmd_queue_uid ON cmd_queue(uid, position);
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS consumers (
    name TEXT PRIMARY KEY, position INTEGER NOT NULL, holds INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS webhook_endpoints (id TEXT PRIMARY KEY, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_endpoint_health (id TEXT PRIMARY KEY, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_pending (
    delivery_id TEXT NOT NULL, endpoint_id TEXT NOT NULL, event TEXT NOT NULL, query TEXT NOT NULL,
    body BLOB NOT NULL, attempts INTEGER NOT NULL, next_at_ms INTEGER NOT NULL, event_at_ms INTEGER NOT NULL,
    last_error TEXT NOT NULL, dead INTEGER NOT NULL, dead_at_ms INTEGER NOT NULL,
    source TEXT NOT NULL DEFAULT '', PRIMARY KEY (endpoint_id, delivery_id));
CREATE INDEX IF NOT EXISTS webhook_pending_due ON webhook_pending(endpoint_id, dead, next_at_ms);
CREATE TABLE IF NOT EXISTS webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, endpoint_id TEXT NOT NULL, delivery_id TEXT NOT NULL,
    event TEXT NOT NULL, at_ms INTEGER NOT NULL, success INTEGER NOT NULL, status INTEGER,
    latency_ms INTEGER NOT NULL, error TEXT NOT NULL, response TEXT NOT NULL,
    request TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS webhook_attempts_endpoint ON webhook_attempts(endpoint_id, id);
CREATE INDEX IF NOT EXISTS webhook_attempts_at ON webhook_attempts(at_ms);
CREATE TABLE IF NOT EXISTS relay_sources (id TEXT PRIMARY KEY, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS relay_keys (
    source TEXT NOT NULL, key INTEGER NOT NULL, at_ms INTEGER NOT NULL,
    PRIMARY KEY (source, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS relay_keys_at ON relay_keys(at_ms);
CREATE TABLE IF NOT EXISTS connections (
    conn_id INTEGER PRIMARY KEY, uid TEXT NOT NULL, device_flag INTEGER NOT NULL,
    connected_at INTEGER NOT NULL);
";

/// The schema version `PRAGMA user_version` records once the steps below ran.
const VERSION: i64 = 6;

/// Creates the tables that are missing, then runs the steps a store of an older version needs: version
/// 2 indexes the person channels that already have history, for conversation lists; version 3 lets a
/// consumer stop holding the event log (`consumers.holds`); version 4 keeps each attempt's request body
/// (`webhook_attempts.request`); version 5 names where each delivery's events came from (`source` of
/// `webhook_pending` and `webhook_attempts`, relay mode).
pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 2 {
        conn.execute_batch(
            "BEGIN;
             INSERT OR IGNORE INTO person_channels(uid, peer, channel_key)
               SELECT substr(channel_key, 1, instr(channel_key, '@') - 1),
                      substr(channel_key, instr(channel_key, '@') + 1), channel_key
               FROM messages WHERE channel_type = 1 AND instr(channel_key, '@') > 0 GROUP BY channel_key;
             INSERT OR IGNORE INTO person_channels(uid, peer, channel_key)
               SELECT substr(channel_key, instr(channel_key, '@') + 1),
                      substr(channel_key, 1, instr(channel_key, '@') - 1), channel_key
               FROM messages WHERE channel_type = 1 AND instr(channel_key, '@') > 0 GROUP BY channel_key;
             COMMIT;",
        )?;
    }
    if version < 3 && !has_column(conn, "consumers", "holds")? {
        conn.execute_batch("ALTER TABLE consumers ADD COLUMN holds INTEGER NOT NULL DEFAULT 1")?;
    }
    if version < 4 && !has_column(conn, "webhook_attempts", "request")? {
        conn.execute_batch(
            "ALTER TABLE webhook_attempts ADD COLUMN request TEXT NOT NULL DEFAULT ''",
        )?;
    }
    for table in ["webhook_pending", "webhook_attempts"] {
        if version < 5 && !has_column(conn, table, "source")? {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN source TEXT NOT NULL DEFAULT ''"
            ))?;
        }
    }
    if version < 6 && has_table(conn, "client_msgs")? {
        // The keys move to time buckets (`client_keys`). The store does not know the configured
        // window here: the keys go to the buckets of the default window (a day), where a claim with
        // that window finds them; with another window, a key sent before the upgrade is not found.
        conn.execute_batch(
            "BEGIN;
             INSERT OR IGNORE INTO client_msg_keys(bucket, from_uid, client_msg_no, created_at, message_id, message_seq)
               SELECT (created_at / 86400) * 86400, from_uid, client_msg_no, created_at, message_id, message_seq
               FROM client_msgs;
             DROP TABLE client_msgs;
             COMMIT;",
        )?;
    }
    if version < VERSION {
        conn.execute_batch(&format!("PRAGMA user_version = {VERSION}"))?;
    }
    Ok(())
}

fn has_table(conn: &Connection, table: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
    for name in names {
        if name? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The AUTOINCREMENT high-water mark of `table` (positions are never reused, even after retention).
pub(crate) fn sequence_of(conn: &Connection, table: &str) -> Result<i64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .unwrap_or(0))
}
