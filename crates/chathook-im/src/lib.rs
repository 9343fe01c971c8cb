//! The IM core of chathook: the WebSocket JSON-RPC gateway, presence, messaging and the WuKongIM REST API.
//!
//! Data flows one way: `gateway` (frames, auth, limits, sessions) and `api` (backend REST calls) call
//! into [`Im`], which owns `presence` (who is online), `channels` (group cache) and `messaging` (ids,
//! persistence with events, fan-out). Every state change appends its events to the store's event log
//! before it is acknowledged. In a cluster (`cluster`), each node also applies every node's commits in
//! log order, to deliver their messages and follow their connections. It knows nothing of webhooks.

pub mod api;
mod channels;
pub mod cluster;
pub mod config;
mod connections;
pub mod conversations;
pub mod error;
pub mod gateway;
mod groups;
mod messaging;
pub mod metrics;
mod ordering;
pub mod presence;
mod turns;
mod users;
pub mod usersig;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chathook_store::{ConnRecord, Store, StoreError};
use tokio::sync::{watch, Semaphore};

pub use channels::Channels;
pub use cluster::ClusterError;
pub use config::{
    ClusterConfig, GatewayConfig, ImConfig, Limits, MessagesConfig, PayloadFormat, RouteConfig,
};
pub use connections::{Login, LoginRefused, OpenConnection};
pub use error::{ChannelError, SendError};
pub use groups::valid_channel_id;
pub use messaging::{Origin, SendAck, SendRequest};
pub use metrics::ImMetrics;
pub use presence::Presence;
pub use users::DEVICE_LEVEL_PRIMARY;

/// The IM core's shared state. Cloning is cheap and shares it.
#[derive(Clone)]
pub struct Im {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    presence: Presence,
    channels: Channels,
    config: ImConfig,
    metrics: ImMetrics,
    counters: metrics::MessageCounters,
    next_conn_id: AtomicU64,
    /// Holds back fan-outs that finished before an earlier seq of their channel.
    sequencer: ordering::Sequencer<messaging::Fanout>,
    /// WuKongIM's system uids: their client sends skip the sender checks. Mirrors the store.
    system_uids: dashmap::DashSet<String>,
    /// Flipped to true when the server shuts down; sessions watch it.
    shutdown: watch::Sender<bool>,
    /// One permit per WebSocket session (the connection cap); all permits back = all sessions ended.
    sessions: Arc<Semaphore>,
    /// The before-send hook, once wired (the webhook engine starts after the IM core).
    before_send: std::sync::OnceLock<Arc<dyn chathook_events::BeforeSend>>,
    /// Each channel's line of sends while a before-send hook judges them.
    turns: turns::Turns,
    /// This node's part in a cluster, once it joined one.
    cluster: cluster::ClusterSlot,
    /// Failed logins by address and user (shared with the admin API's key check).
    throttle: Arc<chathook_http::throttle::Throttle>,
    /// Hashes users' tokens under the secrets key.
    sealer: chathook_store::sealing::Sealer,
}

impl Im {
    /// Starts the IM core on `store`: connections the store still records as online (the server
    /// stopped without reporting them) are reported offline with reason `server_restart`.
    pub async fn start(
        store: Arc<dyn Store>,
        config: ImConfig,
        sealer: chathook_store::sealing::Sealer,
        metrics: ImMetrics,
    ) -> Result<Im, StoreError> {
        let channels = Channels::default();
        channels.load_live(&store.live_channels().await?);
        let system_uids = store.system_uids().await?.into_iter().collect();
        // In a cluster a connection id carries its node's id, so that ids are unique across nodes.
        let first_conn_id = if config.cluster.enabled() {
            (u64::from(config.node_id) << cluster::CONN_ID_NODE_SHIFT) | 1
        } else {
            1
        };
        let im = Im {
            inner: Arc::new(Inner {
                store,
                presence: Presence::default(),
                channels,
                next_conn_id: AtomicU64::new(first_conn_id),
                sequencer: ordering::Sequencer::default(),
                system_uids,
                shutdown: watch::channel(false).0,
                sessions: Arc::new(Semaphore::new(config.limits.max_connections)),
                before_send: std::sync::OnceLock::new(),
                turns: turns::Turns::default(),
                cluster: cluster::ClusterSlot::new(),
                throttle: Arc::new(chathook_http::throttle::Throttle::new(
                    config.throttle.clone(),
                )),
                sealer,
                config,
                counters: metrics.message_counters(),
                metrics,
            }),
        };
        let recovering = im.clone();
        let recovered = im
            .store()
            .recover_connections(Box::new(move |conns: &Vec<ConnRecord>| {
                recovering.restart_events(conns)
            }))
            .await?;
        if let Some(max) = recovered.iter().map(|c| c.conn_id).max() {
            im.inner.next_conn_id.fetch_max(max + 1, Ordering::Relaxed);
        }
        if !recovered.is_empty() {
            tracing::info!(
                connections = recovered.len(),
                "reported connections left online by the previous run as offline"
            );
        }
        Ok(im)
    }

    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// The secrets keys (users' token hashes).
    pub(crate) fn sealer(&self) -> &chathook_store::sealing::Sealer {
        &self.inner.sealer
    }

    /// Failed credentials by address and user: the gateway's logins report to it, and so may the
    /// server's admin-key check.
    pub fn throttle(&self) -> &Arc<chathook_http::throttle::Throttle> {
        &self.inner.throttle
    }

    /// Wires the before-send hook; later calls are ignored (one hook source per server).
    pub fn set_before_send(&self, hook: Arc<dyn chathook_events::BeforeSend>) {
        let _ = self.inner.before_send.set(hook);
    }

    pub(crate) fn before_send(&self) -> Option<&Arc<dyn chathook_events::BeforeSend>> {
        self.inner.before_send.get()
    }

    pub(crate) fn turns(&self) -> &turns::Turns {
        &self.inner.turns
    }

    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    pub fn channels(&self) -> &Channels {
        &self.inner.channels
    }

    pub fn config(&self) -> &ImConfig {
        &self.inner.config
    }

    pub fn metrics(&self) -> &ImMetrics {
        &self.inner.metrics
    }

    /// Messages sent since the server started, person and group channels together.
    pub fn messages_sent_total(&self) -> u64 {
        let c = self.message_counters();
        c.person.get() + c.group.get()
    }

    /// A uid marked with `/user/systemuids_add`.
    pub fn is_system_uid(&self, uid: &str) -> bool {
        self.inner.system_uids.contains(uid)
    }

    /// Adds (or removes) system uids, durably; returns the whole set.
    pub async fn change_system_uids(
        &self,
        uids: Vec<String>,
        remove: bool,
    ) -> Result<Vec<String>, StoreError> {
        let all = self.store().change_system_uids(uids, remove).await?;
        self.replace_system_uids(&all);
        self.tell_other_nodes(cluster::wire::Order::SystemUidsChanged);
        Ok(all)
    }

    /// Reads the system uids again (another node changed them).
    pub(crate) async fn reload_system_uids(&self) -> Result<(), StoreError> {
        let all = self.store().system_uids().await?;
        self.replace_system_uids(&all);
        Ok(())
    }

    fn replace_system_uids(&self, all: &[String]) {
        let set = &self.inner.system_uids;
        set.retain(|u| all.contains(u));
        for uid in all {
            set.insert(uid.clone());
        }
    }

    pub(crate) fn sequencer(&self) -> &ordering::Sequencer<messaging::Fanout> {
        &self.inner.sequencer
    }

    pub(crate) fn message_counters(&self) -> &metrics::MessageCounters {
        &self.inner.counters
    }

    pub(crate) fn next_conn_id(&self) -> u64 {
        self.inner.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn sessions(&self) -> &Arc<Semaphore> {
        &self.inner.sessions
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Tells every session to disconnect its client and waits until each has reported its user offline.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let all = self.config().limits.max_connections as u32;
        if let Ok(permits) = self.inner.sessions.acquire_many(all).await {
            permits.forget();
        }
        if let Some(cluster) = self.cluster() {
            cluster.leave().await;
        }
    }
}
