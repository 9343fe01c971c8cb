//! The PostgreSQL schema as numbered steps. A node starting takes a transaction-scoped advisory lock,
//! runs the steps the database has not recorded in `chathook_migrations`, records them, and commits:
//! nodes starting together wait for each other and each step runs once. A step is never edited once
//! released; a change is a new step.

use tokio_postgres::Client;

use super::pg_error;
use crate::StoreError;

/// The advisory lock key the migrations hold ("chathook" in ASCII).
const MIGRATION_LOCK: i64 = 0x6368_6174_686f_6f6b;

/// (version, what it adds, SQL), in order.
const STEPS: &[(i32, &str, &str)] = &[
    (
        1,
        "users: device tokens, profiles, system uids",
        "CREATE TABLE tokens (
             uid TEXT NOT NULL, device_flag SMALLINT NOT NULL, token_hash BYTEA NOT NULL,
             device_level SMALLINT NOT NULL, PRIMARY KEY (uid, device_flag));
         CREATE TABLE profiles (
             uid TEXT PRIMARY KEY, name TEXT NOT NULL, avatar TEXT NOT NULL, custom JSONB NOT NULL);
         CREATE TABLE system_uids (uid TEXT PRIMARY KEY);",
    ),
    (
        2,
        "the event log, its head (one row, locked by each append) and its consumers",
        "CREATE TABLE event_log (
             position BIGINT PRIMARY KEY, at_ms BIGINT NOT NULL, body JSONB NOT NULL);
         CREATE TABLE event_log_head (
             only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row), position BIGINT NOT NULL);
         INSERT INTO event_log_head(position) VALUES (0);
         CREATE TABLE consumers (
             name TEXT PRIMARY KEY, position BIGINT NOT NULL, holds BOOLEAN NOT NULL DEFAULT TRUE);",
    ),
    (
        3,
        "webhooks: endpoint documents and health, settings, pending deliveries, the attempt log",
        "CREATE TABLE webhook_endpoints (id TEXT PRIMARY KEY, document TEXT NOT NULL);
         CREATE TABLE webhook_endpoint_health (id TEXT PRIMARY KEY, document TEXT NOT NULL);
         CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE webhook_pending (
             delivery_id TEXT NOT NULL, endpoint_id TEXT NOT NULL, event TEXT NOT NULL,
             query TEXT NOT NULL, body BYTEA NOT NULL, attempts INTEGER NOT NULL,
             next_at_ms BIGINT NOT NULL, event_at_ms BIGINT NOT NULL, last_error TEXT NOT NULL,
             dead BOOLEAN NOT NULL, dead_at_ms BIGINT NOT NULL,
             PRIMARY KEY (endpoint_id, delivery_id));
         CREATE INDEX webhook_pending_due ON webhook_pending(endpoint_id, dead, next_at_ms);
         CREATE TABLE webhook_attempts (
             id BIGSERIAL PRIMARY KEY, endpoint_id TEXT NOT NULL, delivery_id TEXT NOT NULL,
             event TEXT NOT NULL, at_ms BIGINT NOT NULL, success BOOLEAN NOT NULL, status INTEGER,
             latency_ms BIGINT NOT NULL, error TEXT NOT NULL, response TEXT NOT NULL,
             request TEXT NOT NULL DEFAULT '');
         CREATE INDEX webhook_attempts_endpoint ON webhook_attempts(endpoint_id, id);
         CREATE INDEX webhook_attempts_at ON webhook_attempts(at_ms);",
    ),
    (
        4,
        "channels: flags, subscribers, blacklists and whitelists (lists keep their insertion order)",
        "CREATE TABLE channels (
             channel_id TEXT NOT NULL, channel_type SMALLINT NOT NULL, large BOOLEAN NOT NULL,
             ban BOOLEAN NOT NULL, disband BOOLEAN NOT NULL, live BOOLEAN NOT NULL,
             PRIMARY KEY (channel_id, channel_type));
         CREATE INDEX channels_live ON channels(live) WHERE live;
         CREATE TABLE subscribers (
             channel_id TEXT NOT NULL, channel_type SMALLINT NOT NULL, uid TEXT NOT NULL,
             seq BIGSERIAL, PRIMARY KEY (channel_id, channel_type, uid));
         CREATE TABLE blacklist (
             channel_id TEXT NOT NULL, channel_type SMALLINT NOT NULL, uid TEXT NOT NULL,
             seq BIGSERIAL, PRIMARY KEY (channel_id, channel_type, uid));
         CREATE TABLE whitelist (
             channel_id TEXT NOT NULL, channel_type SMALLINT NOT NULL, uid TEXT NOT NULL,
             seq BIGSERIAL, PRIMARY KEY (channel_id, channel_type, uid));",
    ),
    (
        5,
        "messages: history, each channel's last seq (locked by each append), client_msg_no claims, \
         person channels, CMD queues",
        "CREATE TABLE channel_seqs (
             channel_key TEXT NOT NULL, channel_type SMALLINT NOT NULL, last_seq BIGINT NOT NULL,
             PRIMARY KEY (channel_key, channel_type));
         CREATE TABLE messages (
             channel_key TEXT NOT NULL, channel_type SMALLINT NOT NULL, message_seq BIGINT NOT NULL,
             message_id BIGINT NOT NULL, client_msg_no TEXT NOT NULL, from_uid TEXT NOT NULL,
             channel_id TEXT NOT NULL, header SMALLINT NOT NULL, setting SMALLINT NOT NULL,
             expire BIGINT NOT NULL, timestamp BIGINT NOT NULL, payload BYTEA NOT NULL,
             PRIMARY KEY (channel_key, channel_type, message_seq));
         CREATE INDEX messages_id ON messages(channel_key, channel_type, message_id);
         CREATE INDEX messages_client_msg_no ON messages(channel_key, channel_type, client_msg_no);
         CREATE TABLE client_msgs (
             from_uid TEXT NOT NULL, client_msg_no TEXT NOT NULL, created_at BIGINT NOT NULL,
             message_id BIGINT NOT NULL, message_seq BIGINT NOT NULL,
             PRIMARY KEY (from_uid, client_msg_no));
         CREATE TABLE person_channels (
             uid TEXT NOT NULL, peer TEXT NOT NULL, channel_key TEXT NOT NULL,
             PRIMARY KEY (uid, peer));
         CREATE TABLE cmd_queue (
             position BIGSERIAL PRIMARY KEY, uid TEXT NOT NULL, message_id BIGINT NOT NULL,
             client_msg_no TEXT NOT NULL, from_uid TEXT NOT NULL, channel_id TEXT NOT NULL,
             channel_type SMALLINT NOT NULL, header SMALLINT NOT NULL, setting SMALLINT NOT NULL,
             expire BIGINT NOT NULL, timestamp BIGINT NOT NULL, payload BYTEA NOT NULL);
         CREATE INDEX cmd_queue_uid ON cmd_queue(uid, position);",
    ),
    (
        6,
        "conversations: each user's read and delete positions per channel",
        "CREATE TABLE conversation_state (
             uid TEXT NOT NULL, channel_key TEXT NOT NULL, channel_type SMALLINT NOT NULL,
             read_seq BIGINT NOT NULL, deleted_seq BIGINT NOT NULL,
             PRIMARY KEY (uid, channel_key, channel_type));
         CREATE INDEX subscribers_uid ON subscribers(uid);",
    ),
    (
        7,
        "connections recorded as online, by node",
        "CREATE TABLE connections (
             node_id INTEGER NOT NULL, conn_id BIGINT NOT NULL, uid TEXT NOT NULL,
             device_flag SMALLINT NOT NULL, connected_at BIGINT NOT NULL,
             PRIMARY KEY (node_id, conn_id));",
    ),
    (
        8,
        "the cluster: connections' device level, nodes' heartbeats, leases",
        "ALTER TABLE connections ADD COLUMN device_level SMALLINT NOT NULL DEFAULT 0;
         CREATE TABLE nodes (node_id INTEGER PRIMARY KEY, seen_at_ms BIGINT NOT NULL);
         CREATE TABLE leases (
             name TEXT PRIMARY KEY, node_id INTEGER NOT NULL, expires_at_ms BIGINT NOT NULL);",
    ),
    (
        9,
        "event bodies as text: the database never looks inside them, so it need not parse them",
        "ALTER TABLE event_log ALTER COLUMN body TYPE TEXT USING body::TEXT;",
    ),
    (
        10,
        "each node's figures for the console's overview (connections, messages, attempts)",
        "CREATE TABLE node_figures (
             node_id INTEGER PRIMARY KEY, at_ms BIGINT NOT NULL, figures TEXT NOT NULL);",
    ),
    (
        11,
        "relay mode: relay sources, and each source's de-duplication keys (message ids) with when seen",
        "CREATE TABLE relay_sources (id TEXT PRIMARY KEY, document TEXT NOT NULL);
         CREATE TABLE relay_keys (
             source TEXT NOT NULL, key BIGINT NOT NULL, at_ms BIGINT NOT NULL,
             PRIMARY KEY (source, key));
         CREATE INDEX relay_keys_at ON relay_keys(at_ms);",
    ),
    (
        12,
        "where each delivery's events came from (relay mode): source of pending deliveries and attempts",
        "ALTER TABLE webhook_pending ADD COLUMN source TEXT NOT NULL DEFAULT '';
         ALTER TABLE webhook_attempts ADD COLUMN source TEXT NOT NULL DEFAULT '';",
    ),
];

/// The version the last step brings the schema to.
pub const LATEST_VERSION: i32 = STEPS[STEPS.len() - 1].0;

/// Brings the schema to [`LATEST_VERSION`].
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS chathook_migrations (
             version INTEGER PRIMARY KEY, description TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(pg_error)?;
    let at: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM chathook_migrations",
            &[],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    for (version, description, sql) in STEPS.iter().filter(|(v, _, _)| *v > at) {
        tx.batch_execute(sql).await.map_err(pg_error)?;
        tx.execute(
            "INSERT INTO chathook_migrations(version, description) VALUES ($1, $2)",
            &[version, description],
        )
        .await
        .map_err(pg_error)?;
        tracing::info!(version, description, "PostgreSQL schema step applied");
    }
    tx.commit().await.map_err(pg_error)
}
