//! The IM core's settings: limits and timings, each with a default (see the README's table).

use serde::{Deserialize, Serialize};

/// Limits on what clients and backends may send. Every one has a test at its edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest WebSocket frame (and message) a client may send, in bytes.
    pub max_frame_bytes: usize,
    /// Largest message payload, in bytes (after base64 or JSON decoding).
    pub max_payload_bytes: usize,
    /// Longest `client_msg_no` a send may carry, in bytes (it is stored, echoed and sent in webhooks).
    pub max_client_msg_no_bytes: usize,
    /// Sends per second per connection (a token bucket with this burst).
    pub sends_per_sec: u32,
    /// Simultaneous connections of one user, all devices together.
    pub connections_per_user: usize,
    /// Simultaneous WebSocket connections of the whole server.
    pub max_connections: usize,
    /// Most subscribers a group may have.
    pub group_max_members: usize,
    /// Largest `limit` of `/channel/messagesync`.
    pub sync_max_limit: usize,
    /// Bytes of offline recipients one `message.offline` event lists (`to_uids` as JSON); more are
    /// spread over several events of the same message.
    pub offline_uids_bytes: usize,
    /// Bytes of messages one history page may hold (payloads and ids); a page that would pass it
    /// ends early with `more: 1`, so one call never holds more than this.
    pub sync_max_bytes: usize,
    /// Time a new WebSocket has to send `connect`, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Frames waiting to be written to one connection; a client that lets it fill is disconnected.
    pub outbound_queue: usize,
    /// Bytes one connection may hold in `recv`s queued or awaiting `recvack` (payloads counted twice,
    /// as message and frame); a client that lets it fill is disconnected.
    pub outbound_queue_bytes: usize,
    /// `recv`s a connection may leave unacknowledged before it is disconnected.
    pub max_unacked: usize,
    /// `send`s of one connection being processed at once; reading pauses beyond it.
    pub max_inflight_sends: usize,
    /// Largest HTTP request body, in bytes.
    pub max_http_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 1024 * 1024,
            max_payload_bytes: 512 * 1024,
            max_client_msg_no_bytes: 128,
            sends_per_sec: 200,
            connections_per_user: 32,
            max_connections: 100_000,
            group_max_members: 10_000,
            sync_max_limit: 10_000,
            offline_uids_bytes: 256 * 1024,
            sync_max_bytes: 16 * 1024 * 1024,
            connect_timeout_ms: 2_000,
            outbound_queue: 1_024,
            outbound_queue_bytes: 8 * 1024 * 1024,
            max_unacked: 1_024,
            max_inflight_sends: 64,
            max_http_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Timings of the WebSocket gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// The TCP port's address (WuKongIM's `addr`): unset, `127.0.0.1:5100`, skipped with a warning
    /// when that port is taken; an address set here must be free; `"off"` turns the TCP port off.
    pub tcp_addr: Option<String>,
    /// A connection that sends no frame for this long is closed (reason: heartbeat timeout).
    pub heartbeat_timeout_ms: u64,
    /// A `recv` not acknowledged within this time is sent again.
    pub ack_timeout_ms: u64,
    /// How many times an unacknowledged `recv` is sent again before the server stops trying.
    pub max_resends: u32,
    /// A write to a client that takes longer than this closes the connection.
    pub write_timeout_ms: u64,
    /// Read buffer of one WebSocket connection, in bytes (idle connections cost about this much).
    pub read_buffer_bytes: usize,
    /// How `recv` carries a payload: `base64` (WuKongIM >= 2.2.3 and its SDKs) or `json` (the raw JSON
    /// value, for clients written for WuKongIM <= 2.2.2).
    pub payload_format: PayloadFormat,
    /// Whether binary-protocol (wkproto) connections encrypt payloads (X25519 + AES, as WuKongIM's
    /// SDKs expect); off for clients that send plain payloads (WuKongIM's `disableEncryption`).
    pub encryption: bool,
}

/// The form of a `recv` payload on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// Standard base64 of the payload bytes.
    #[default]
    Base64,
    /// The payload as a JSON value when it is valid JSON (base64 otherwise).
    Json,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            tcp_addr: None,
            heartbeat_timeout_ms: 90_000,
            ack_timeout_ms: 10_000,
            max_resends: 3,
            write_timeout_ms: 10_000,
            read_buffer_bytes: 4096,
            payload_format: PayloadFormat::Base64,
            encryption: true,
        }
    }
}

/// Message handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagesConfig {
    /// A `client_msg_no` reused by the same sender within this many seconds returns the first message.
    pub dedup_window_secs: u64,
    /// Enforce person-channel whitelists: a client may send to a user only when on that user's
    /// whitelist (WuKongIM's `whitelistOffOfPerson: false`; off by default, as in WuKongIM).
    pub person_whitelist: bool,
    /// `/conversation/sync` looks this far back (messages) for the user's own newest message when it
    /// counts unread messages: counts up to this many are exact.
    pub unread_scan_max: usize,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        MessagesConfig {
            dedup_window_secs: 24 * 3600,
            person_whitelist: false,
            unread_scan_max: 10_000,
        }
    }
}

/// The addresses `GET /route` and `POST /route/batch` give clients (WuKongIM's `external.*` and
/// `intranet.tcpAddr`). Unset, `tcp_addr` is the TCP gateway's address and `ws_addr` the WebSocket one's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// Empty: the TCP gateway's listen address (`host:port`), when it listens.
    pub tcp_addr: String,
    /// Empty: `ws://` + the gateway's listen address.
    pub ws_addr: String,
    pub wss_addr: String,
    /// Answered instead of `tcp_addr` (and no WebSocket addresses) for `?intranet=1`.
    pub intranet_tcp_addr: String,
}

/// Several nodes sharing one PostgreSQL (`storage.backend = "postgres"`) and one NATS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS server the nodes exchange their commits and orders through (`nats://host:4222`);
    /// empty: this node runs alone.
    pub nats_url: String,
    /// How often a node records in the database that it is alive.
    pub heartbeat_ms: u64,
    /// A node silent this long has its connections reported offline by another (reason `node_lost`).
    pub node_timeout_ms: u64,
    /// How long a node waits for a commit from NATS before reading it from the database instead.
    pub gap_wait_ms: u64,
    /// Each webhook endpoint's dispatcher runs on one node under a lease of this length, renewed at a
    /// third of it; another node takes over within it when that node dies.
    pub lease_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats_url: String::new(),
            heartbeat_ms: 1_000,
            node_timeout_ms: 10_000,
            gap_wait_ms: 200,
            lease_ms: 10_000,
        }
    }
}

impl ClusterConfig {
    /// Whether this node is part of a cluster.
    pub fn enabled(&self) -> bool {
        !self.nats_url.is_empty()
    }
}

/// Everything the IM core is configured with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImConfig {
    pub limits: Limits,
    pub gateway: GatewayConfig,
    pub messages: MessagesConfig,
    pub route: RouteConfig,
    pub node_id: u16,
    pub cluster: ClusterConfig,
    /// Set with `tencent.secret_key`: clients may connect with a Tencent UserSig instead of a token.
    pub usersig: Option<crate::usersig::UserSigKey>,
    /// How failed logins slow down (`auth.throttle`).
    pub throttle: chathook_http::throttle::ThrottleConfig,
}
