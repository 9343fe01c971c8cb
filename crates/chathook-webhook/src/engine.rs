//! The webhook engine: the registry of endpoints (stored ones and read-only ones from the config), one
//! dispatcher task each, the feature switches, the endpoints' health, and the attempt log's writer and
//! retention. The API changes endpoints through it; dispatchers never reach back into it (they get a
//! [`Context`] without the registry). In a cluster, an endpoint's dispatcher runs only while this node
//! holds its lease (`lease`), and the registry follows the other nodes' changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chathook_events::{EndpointNotice, Event, EventLog, StartAt};
use chathook_store::sealing::Sealer;
use chathook_store::{RelayStore, StoreError, WebhookStore};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::attempt_log::{self, AttemptLog};
use crate::client::{AttemptResult, ClientOptions, Deliverer};
use crate::config::WebhookConfig;
use crate::dispatcher::attempt::Delivery;
use crate::dispatcher::Context;
use crate::endpoint::{consumer_name, Endpoint};
use crate::features::Features;
use crate::guard::NetworkGuard;
use crate::health::{Health, HealthBook, SeekRequest};
use crate::hooks::{HookSlots, Hooks};
use crate::metrics::WebhookMetrics;
use crate::notices::Notices;
use crate::relay::Relay;
use crate::stored;

/// An endpoint's dispatcher (running while the node may deliver to it) and the handles to reach it.
struct Worker {
    /// The endpoint's settings, as its dispatcher sees them.
    endpoint: watch::Sender<Arc<Endpoint>>,
    wake: Arc<Notify>,
    /// Cancelled to stop the dispatcher for good (a child of the engine's `stop`).
    stop: CancellationToken,
    /// Whether this node may run the dispatcher: always when it runs alone; in a cluster, while it
    /// holds the endpoint's lease.
    leased: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event log: {0}")]
    Log(#[from] chathook_events::EventLogError),
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("invalid webhook configuration: {0}")]
    Config(String),
    /// A stored endpoint cannot be read (its secrets do not open under the secrets keys).
    #[error(transparent)]
    Stored(#[from] crate::stored::StoredError),
    #[error(transparent)]
    Relay(#[from] crate::relay::RelayError),
    /// Another endpoint already answers this before-send hook.
    #[error(
        "{hook} is already answered by endpoint {endpoint}; one endpoint per before-send hook"
    )]
    HookTaken {
        hook: &'static str,
        endpoint: String,
    },
}

/// Where a new endpoint's cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// Events appended from now on.
    Now,
    /// Everything the log still holds.
    Oldest,
    /// The events appended at or after this time (unix ms) that the log still holds.
    Time(i64),
}

/// When an endpoint of the config file was first loaded (unix ms), remembered from its first start.
async fn first_loaded(store: &dyn WebhookStore, id: &str) -> Result<i64, StoreError> {
    let key = format!("config_endpoint_loaded:{id}");
    if let Some(at) = store.setting(&key).await?.and_then(|v| v.parse().ok()) {
        return Ok(at);
    }
    let now = crate::clock::now_ms();
    store.put_setting(&key, now.to_string()).await?;
    Ok(now)
}

/// The endpoints the store keeps, each with its health: a document stored in clear by an older version,
/// under an earlier secrets key or before health had its own document is written again; one whose
/// secrets do not open stops the start (the wrong secrets key).
async fn load_stored(
    ctx: &Context,
    health: &mut HashMap<String, Health>,
) -> Result<Vec<(Endpoint, Health)>, EngineError> {
    let mut stored = Vec::new();
    for (id, doc) in ctx.store.endpoints().await? {
        let (mut e, mut rewrite) = match stored::open(&ctx.sealer, &id, &doc) {
            Ok(opened) => opened,
            // Secrets that do not open: the wrong secrets key; starting would lose them.
            Err(e @ stored::StoredError::Sealed { .. }) => return Err(e.into()),
            Err(e) => {
                tracing::error!(error = %e, "skipping an unreadable endpoint");
                continue;
            }
        };
        let h = match health.remove(&id) {
            Some(h) => h,
            None => {
                // Stored before health had a document of its own.
                let (h, reenable) = Health::from_legacy_document(&doc);
                if reenable {
                    e.enabled = true;
                    e.disabled_at = None;
                    rewrite = true;
                }
                h
            }
        };
        // Stored in clear by an older version, or under an earlier secrets key: sealed anew.
        if rewrite {
            ctx.store
                .put_endpoint(&id, stored::seal(&ctx.sealer, &e))
                .await?;
        }
        stored.push((e, h));
    }
    Ok(stored)
}

/// The running webhook engine. Cloning shares it.
#[derive(Clone)]
pub struct WebhookEngine {
    ctx: Arc<Context>,
    workers: Arc<Mutex<HashMap<String, Worker>>>,
    /// Which endpoint answers each before-send hook (follows `workers`).
    hooks: Arc<HookSlots>,
    /// Held by each create, update and delete: a before-send hook's check and claim are one step.
    changes: Arc<tokio::sync::Mutex<()>>,
    /// Cancelled at shutdown; each dispatcher's and background task's token is a child of it.
    stop: CancellationToken,
    background: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// In a cluster: dispatchers run under leases.
    leasing: Option<crate::lease::Leasing>,
    /// Relay mode's sources and ingest.
    relay: Relay,
}

const FEATURES_KEY: &str = "webhook.features";

impl WebhookEngine {
    /// Starts the engine: loads the endpoints, their health and the features, adds the config file's
    /// endpoints (read-only; `secret_seed` derives their secrets when the config gives none) and starts
    /// a dispatcher for each.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        log: Arc<dyn EventLog>,
        store: Arc<dyn WebhookStore>,
        relay_store: Arc<dyn RelayStore>,
        config: WebhookConfig,
        secret_seed: &str,
        sealer: Sealer,
        metrics: WebhookMetrics,
        leasing: Option<crate::lease::Leasing>,
    ) -> Result<WebhookEngine, EngineError> {
        config.validate().map_err(EngineError::Config)?;
        let deliverer = Deliverer::new(
            NetworkGuard::new(
                config.allowed_networks.clone(),
                config.blocked_networks.clone(),
            ),
            ClientOptions {
                proxy: config.proxy.clone(),
                https_only: config.https_only,
            },
        )
        .map_err(|e| EngineError::Client(e.to_string()))?;
        let features = match store.setting(FEATURES_KEY).await? {
            Some(text) => serde_json::from_str(&text).unwrap_or(config.features),
            None => config.features,
        };
        let (attempts, writer) =
            AttemptLog::start(store.clone(), metrics.attempt_log_dropped.clone());
        let mut health: HashMap<String, Health> = HashMap::new();
        for (id, doc) in store.endpoint_health().await? {
            match serde_json::from_str::<Health>(&doc) {
                Ok(h) => {
                    health.insert(id, h);
                }
                Err(e) => {
                    tracing::error!(endpoint = %id, error = %e, "unreadable health; starting afresh")
                }
            }
        }
        let ctx = Arc::new(Context {
            notices: Notices::new(log.clone(), store.clone()),
            log,
            health: HealthBook::new(store.clone()),
            store,
            deliverer,
            features: watch::channel(features).0,
            metrics,
            attempts,
            tencent_app: config.tencent_sdk_app_id,
            config,
            sealer,
        });
        let stop = CancellationToken::new();
        let hooks = Arc::new(HookSlots::default());
        let relay = Relay::start(
            relay_store,
            Arc::new(Hooks {
                ctx: ctx.clone(),
                slots: hooks.clone(),
            }),
            ctx.metrics.clone(),
            ctx.sealer.clone(),
            ctx.config.relay.clone(),
            ctx.config.api_base_url.clone(),
        )
        .await?;
        let engine = WebhookEngine {
            ctx: ctx.clone(),
            workers: Arc::new(Mutex::new(HashMap::new())),
            hooks,
            changes: Arc::new(tokio::sync::Mutex::new(())),
            stop: stop.clone(),
            background: Arc::new(Mutex::new(Vec::new())),
            leasing,
            relay: relay.clone(),
        };
        let mut stored = load_stored(&ctx, &mut health).await?;
        let from_config = crate::config_endpoints::from_config(&ctx.config, secret_seed)
            .map_err(EngineError::Config)?;
        for mut e in from_config {
            e.created_at = first_loaded(ctx.store.as_ref(), &e.id).await?;
            e.updated_at = e.created_at;
            let h = health.remove(&e.id).unwrap_or_default();
            stored.push((e, h));
        }
        for (e, h) in stored {
            engine.launch(e, h, StartAt::Head).await?;
        }
        let pruner = tokio::spawn(attempt_log::prune(
            ctx.store.clone(),
            ctx.config.attempt_retention,
            ctx.config.attempt_prune_interval,
            stop.clone(),
        ));
        let refusals = tokio::spawn(crate::relay::refusals::watch(
            relay.clone(),
            ctx.notices.clone(),
            stop.clone(),
        ));
        let relay_pruner =
            tokio::spawn(relay.prune(ctx.config.attempt_prune_interval, stop.clone()));
        if let Ok(mut bg) = engine.background.lock() {
            bg.extend([writer, pruner, relay_pruner, refusals]);
        }
        if let Some(leasing) = engine.leasing.clone() {
            let holder = tokio::spawn(crate::lease::hold(engine.clone(), leasing, stop.clone()));
            if let Ok(mut bg) = engine.background.lock() {
                bg.push(holder);
            }
        }
        Ok(engine)
    }

    /// Registers `endpoint` with `health` and starts its dispatcher (in a cluster, once this node holds
    /// its lease).
    async fn launch(
        &self,
        endpoint: Endpoint,
        health: Health,
        start: StartAt,
    ) -> Result<(), EngineError> {
        let id = endpoint.id.clone();
        // The cursor exists from now on, whichever node delivers.
        self.ctx
            .log
            .register_consumer(&endpoint.consumer_name(), start)
            .await?;
        let health = self.ctx.health.insert(&id, health);
        let (endpoint_tx, endpoint_rx) = watch::channel(Arc::new(endpoint));
        let wake = Arc::new(Notify::new());
        let stop = self.stop.child_token();
        let (leased, lease) = watch::channel(self.leasing.is_none());
        let run = crate::lease::Run {
            ctx: self.ctx.clone(),
            endpoint: endpoint_rx,
            health,
            wake: wake.clone(),
            start,
        };
        let task = tokio::spawn(run.while_leased(stop.clone(), lease));
        let worker = Worker {
            endpoint: endpoint_tx,
            wake,
            stop,
            leased,
            task,
        };
        if let Ok(mut workers) = self.workers.lock() {
            if let Some(old) = workers.insert(id, worker) {
                old.stop.cancel();
            }
        }
        self.refresh_hooks();
        Ok(())
    }

    /// In a cluster: takes what other nodes changed (endpoints, health, switches) now, not at the
    /// next lease round. Alone: nothing to do.
    pub async fn catch_up(&self) -> Result<(), EngineError> {
        if self.leasing.is_some() {
            self.follow_others().await?;
        }
        Ok(())
    }

    /// Takes the endpoints, health documents, feature switches and relay sources as the store has them.
    async fn follow_others(&self) -> Result<(), EngineError> {
        let store = self.store().clone();
        let stored = store.endpoints().await?;
        let mut health = HashMap::new();
        for (id, doc) in store.endpoint_health().await? {
            if let Ok(h) = serde_json::from_str::<Health>(&doc) {
                health.insert(id, h);
            }
        }
        self.follow_stored(stored, health).await?;
        if let Some(text) = store.setting(FEATURES_KEY).await? {
            if let Ok(features) = serde_json::from_str(&text) {
                self.follow_features(features);
            }
        }
        // Relay sources created, rotated or deleted on another node.
        self.relay.reload().await?;
        Ok(())
    }

    /// Follows another node's change of the stored endpoints: adds the new ones, takes changed
    /// settings, and stops the removed ones (their data went with them).
    async fn follow_stored(
        &self,
        stored: Vec<(String, String)>,
        health: HashMap<String, Health>,
    ) -> Result<(), EngineError> {
        let _one_change_at_a_time = self.changes.lock().await;
        let mut seen = std::collections::HashSet::new();
        for (id, doc) in stored {
            let endpoint = match stored::open(&self.ctx.sealer, &id, &doc) {
                Ok((endpoint, _)) => endpoint,
                Err(e) => {
                    tracing::error!(error = %e, "cannot follow an endpoint another node stored");
                    continue;
                }
            };
            seen.insert(id.clone());
            let known = self
                .workers
                .lock()
                .ok()
                .and_then(|w| w.get(&id).map(|w| w.endpoint.borrow().clone()));
            let h = health.get(&id).cloned().unwrap_or_default();
            match known {
                None => self.launch(endpoint, h, StartAt::Head).await?,
                Some(current) => {
                    if *current != endpoint {
                        if let Ok(workers) = self.workers.lock() {
                            if let Some(w) = workers.get(&id) {
                                w.endpoint.send_replace(Arc::new(endpoint));
                            }
                        }
                    }
                    self.ctx.health.follow(&id, h).await;
                }
            }
        }
        let gone: Vec<String> = self
            .endpoints()
            .iter()
            .filter(|e| !e.read_only && !seen.contains(&e.id))
            .map(|e| e.id.clone())
            .collect();
        for id in gone {
            self.ctx.health.remove(&id).await;
            let worker = self.workers.lock().ok().and_then(|mut w| w.remove(&id));
            if let Some(w) = worker {
                w.stop.cancel();
            }
            self.ctx.metrics.forget_endpoint(&id);
        }
        self.refresh_hooks();
        Ok(())
    }

    /// Puts each before-send hook's endpoint in its slot.
    fn refresh_hooks(&self) {
        let endpoints = self.endpoints();
        self.hooks.fill(endpoints.iter());
    }

    /// Refuses `endpoint` when another endpoint already answers one of its before-send hooks.
    fn check_hooks_free(&self, endpoint: &Endpoint) -> Result<(), EngineError> {
        for other in self.endpoints() {
            if other.id == endpoint.id {
                continue;
            }
            if let Some(kind) = endpoint
                .before_send
                .iter()
                .find(|k| other.before_send.contains(k))
            {
                return Err(EngineError::HookTaken {
                    hook: kind.name(),
                    endpoint: other.id.clone(),
                });
            }
        }
        Ok(())
    }

    /// The before-send hook for the IM core: the endpoints that answer `message.before_send.*`.
    pub fn before_send(&self) -> Arc<dyn chathook_events::BeforeSend> {
        Arc::new(Hooks {
            ctx: self.ctx.clone(),
            slots: self.hooks.clone(),
        })
    }

    /// Every endpoint, sorted by creation.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        let mut list: Vec<Arc<Endpoint>> = self
            .workers
            .lock()
            .map(|w| w.values().map(|w| w.endpoint.borrow().clone()).collect())
            .unwrap_or_default();
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        list
    }

    pub fn endpoint(&self, id: &str) -> Option<Arc<Endpoint>> {
        let workers = self.workers.lock().ok()?;
        workers.get(id).map(|w| w.endpoint.borrow().clone())
    }

    /// What the server observed about an endpoint.
    pub fn health(&self, id: &str) -> Arc<Health> {
        self.ctx.health.get(id)
    }

    /// Stores a new endpoint and starts delivering events appended from now on.
    pub async fn create(&self, endpoint: Endpoint) -> Result<(), EngineError> {
        self.create_from(endpoint, StartFrom::Now).await
    }

    /// Stores a new endpoint and starts delivering from `start`.
    pub async fn create_from(
        &self,
        endpoint: Endpoint,
        start: StartFrom,
    ) -> Result<(), EngineError> {
        let _one_change_at_a_time = self.changes.lock().await;
        self.check_hooks_free(&endpoint)?;
        self.ctx
            .store
            .put_endpoint(&endpoint.id, stored::seal(&self.ctx.sealer, &endpoint))
            .await?;
        let start_at = match start {
            StartFrom::Now => StartAt::Head,
            StartFrom::Oldest => StartAt::Beginning,
            StartFrom::Time(at_ms) => {
                let position = self.ctx.log.position_before(at_ms).await?;
                let name = endpoint.consumer_name();
                self.ctx.log.register_consumer(&name, StartAt::Head).await?;
                self.ctx.log.seek_consumer(&name, position).await?;
                StartAt::Head
            }
        };
        self.launch(endpoint, Health::default(), start_at).await
    }

    /// Moves `id`'s cursor to `position` (back to deliver again, or forward to skip): the request is
    /// stored in the endpoint's health, and its dispatcher, on whichever node runs it, stops (letting
    /// its attempts in flight end) and starts again from there. Waits up to 15 s for that and answers
    /// whether it was seen applied (the request stays until it is).
    pub async fn seek(&self, id: &str, position: u64) -> Result<bool, EngineError> {
        let request = SeekRequest {
            position,
            at_ms: crate::clock::now_ms(),
        };
        self.ctx.health.update(id, |h| h.seek = Some(request)).await;
        self.wake(id);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        // In a cluster each look reads the stored endpoints and health again: not more than five a second.
        let pause = match self.leasing {
            Some(_) => Duration::from_millis(200),
            None => Duration::from_millis(20),
        };
        while tokio::time::Instant::now() < deadline {
            self.catch_up().await?;
            if self.ctx.health.get(id).seek != Some(request) {
                return Ok(true);
            }
            tokio::time::sleep(pause).await;
        }
        Ok(false)
    }

    /// Stores an endpoint's changed settings; its dispatcher picks the change up. `enabled_by_operator`
    /// (the operator asked for `enabled: true`) also clears its failures and a disable by the server.
    pub async fn update(
        &self,
        endpoint: Endpoint,
        enabled_by_operator: bool,
    ) -> Result<(), EngineError> {
        let _one_change_at_a_time = self.changes.lock().await;
        let id = endpoint.id.clone();
        self.check_hooks_free(&endpoint)?;
        // `endpoint.enabled` answers the server's `endpoint.disabled`: an operator's own switch is not
        // reported.
        let server_disabled = self.ctx.health.get(&id).server_disabled.is_some();
        self.ctx
            .store
            .put_endpoint(&id, stored::seal(&self.ctx.sealer, &endpoint))
            .await?;
        if let Ok(workers) = self.workers.lock() {
            if let Some(w) = workers.get(&id) {
                w.endpoint.send_replace(Arc::new(endpoint.clone()));
                w.wake.notify_one();
            }
        }
        self.refresh_hooks();
        if enabled_by_operator {
            self.ctx
                .health
                .update(&id, Health::enabled_by_operator)
                .await;
            if server_disabled && endpoint.enabled {
                let notice = EndpointNotice {
                    reason: "enabled by the operator".into(),
                    ..crate::notices::about(&endpoint)
                };
                self.ctx
                    .notices
                    .emit(Event::EndpointEnabled(Box::new(notice)))
                    .await;
            }
        }
        Ok(())
    }

    /// Stops and forgets an endpoint, with its health, cursor, pending deliveries and attempts.
    pub async fn delete(&self, id: &str) -> Result<bool, EngineError> {
        let _one_change_at_a_time = self.changes.lock().await;
        self.ctx.health.remove(id).await;
        let worker = self.workers.lock().ok().and_then(|mut w| w.remove(id));
        self.refresh_hooks();
        if let Some(w) = worker {
            w.stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), w.task).await;
        }
        // After the dispatcher stopped, so that no attempt makes a series again.
        self.ctx.metrics.forget_endpoint(id);
        Ok(self
            .ctx
            .store
            .delete_endpoint(id, &consumer_name(id))
            .await?)
    }

    /// Wakes an endpoint's dispatcher (after a replay).
    pub fn wake(&self, id: &str) {
        if let Ok(workers) = self.workers.lock() {
            if let Some(w) = workers.get(id) {
                w.wake.notify_one();
            }
        }
    }

    pub fn features(&self) -> Features {
        *self.ctx.features.borrow()
    }

    pub async fn set_features(&self, features: Features) -> Result<(), EngineError> {
        let text = serde_json::to_string(&features).unwrap_or_default();
        self.ctx.store.put_setting(FEATURES_KEY, text).await?;
        self.ctx.features.send_replace(features);
        Ok(())
    }

    /// Relay mode's sources and ingest.
    /// Operational events: logged, and kept for the console.
    pub(crate) fn notices(&self) -> &Notices {
        &self.ctx.notices
    }

    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.ctx.config
    }

    pub fn store(&self) -> &Arc<dyn WebhookStore> {
        &self.ctx.store
    }

    /// Takes the feature switches another node stored.
    fn follow_features(&self, features: Features) {
        self.ctx
            .features
            .send_if_modified(|f| std::mem::replace(f, features) != features);
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.ctx.log
    }

    /// Whether `id`'s circuit breaker is open (as its dispatcher last published it).
    pub fn breaker_open(&self, id: &str) -> bool {
        let labels = crate::metrics::endpoint_label(id);
        self.ctx
            .metrics
            .breaker_open
            .get(&labels)
            .is_some_and(|g| g.get() == 1)
    }

    /// The endpoints whose dispatcher runs on this node (all of them alone; in a cluster, those whose
    /// lease it holds) and whose circuit breaker is open: this node's share of a cluster's count.
    pub fn breaker_open_here(&self) -> Vec<String> {
        crate::lease::LeaseHolder::leased(self)
            .into_iter()
            .filter(|(id, here)| *here && self.breaker_open(id))
            .map(|(id, _)| id)
            .collect()
    }

    /// Changes each time a batch of attempts is stored (for live views of the attempt log).
    pub fn attempts_stored(&self) -> watch::Receiver<u64> {
        self.ctx.attempts.stored()
    }

    /// Cancelled when the engine shuts down (live views end then).
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub fn metrics(&self) -> &WebhookMetrics {
        &self.ctx.metrics
    }

    /// Sends `delivery` to `endpoint` once, outside its dispatcher (test sends), logging the attempt.
    pub(crate) async fn send_once(
        &self,
        endpoint: &Endpoint,
        delivery: &Delivery,
    ) -> (i64, AttemptResult) {
        crate::dispatcher::attempt::send(
            &self.ctx.deliverer,
            &self.ctx.attempts,
            endpoint,
            delivery,
        )
        .await
    }

    /// Stops every dispatcher after its in-flight attempts end, and flushes the attempt log.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks: Vec<JoinHandle<()>> = self
            .workers
            .lock()
            .map(|mut w| w.drain().map(|(_, w)| w.task).collect())
            .unwrap_or_default();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        // Every dispatcher has stopped: another node may take their endpoints at once.
        if let Some(leasing) = &self.leasing {
            leasing.release_all().await;
        }
        // Every dispatcher has recorded its last attempt: wait until the writer has stored them all.
        self.ctx.attempts.flush().await;
        let background: Vec<JoinHandle<()>> = self
            .background
            .lock()
            .map(|mut b| b.drain(..).collect())
            .unwrap_or_default();
        for t in background {
            t.abort();
        }
    }
}

#[async_trait::async_trait]
impl crate::lease::LeaseHolder for WebhookEngine {
    fn leased(&self) -> Vec<(String, bool)> {
        self.workers
            .lock()
            .map(|w| {
                w.iter()
                    .map(|(id, w)| (id.clone(), *w.leased.borrow()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn set_leased(&self, id: &str, held: bool) {
        if let Ok(workers) = self.workers.lock() {
            if let Some(w) = workers.get(id) {
                w.leased
                    .send_if_modified(|h| std::mem::replace(h, held) != held);
            }
        }
    }

    async fn follow(&self) {
        if let Err(e) = self.follow_others().await {
            tracing::warn!(error = %e, "cannot read the endpoints other nodes changed");
        }
    }
}
