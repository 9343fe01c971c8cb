//! The webhook engine: the set of endpoints (stored ones and read-only ones from the config), one
//! dispatcher task per endpoint, the feature switches, the attempt log writer and its retention.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chathook_events::{EventKind, EventLog, StartAt};
use chathook_store::{StoreError, WebhookStore};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::attempt_log::{self, AttemptLog};
use crate::client::{Deliverer, NetworkGuard};
use crate::config::WebhookConfig;
use crate::dispatcher::{now_ms, Dispatcher};
use crate::endpoint::{consumer_name, Endpoint, Flavour};
use crate::features::Features;
use crate::metrics::WebhookMetrics;

/// What the dispatchers share.
pub(crate) struct Shared {
    pub log: Arc<dyn EventLog>,
    pub store: Arc<dyn WebhookStore>,
    pub config: WebhookConfig,
    pub deliverer: Deliverer,
    pub features: watch::Sender<Features>,
    pub metrics: WebhookMetrics,
    pub attempts: AttemptLog,
    endpoints: Mutex<HashMap<String, Worker>>,
}

struct Worker {
    endpoint: watch::Sender<Arc<Endpoint>>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
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
}

impl Shared {
    /// Records that an endpoint is failing since `since` (None: it succeeded), disabling it with
    /// `disable` as the reason when given.
    pub(crate) async fn mark_failing(&self, id: &str, since: Option<i64>, disable: Option<String>) {
        let Some(current) = self.endpoint(id) else {
            return;
        };
        let mut next = (*current).clone();
        next.failing_since = since;
        if let Some(reason) = disable {
            tracing::warn!(endpoint = %id, %reason, "endpoint disabled");
            next.enabled = false;
            next.disabled_reason = Some(reason);
            next.disabled_at.get_or_insert_with(now_ms);
        }
        self.replace_endpoint(&current, next).await;
    }

    /// Stores an endpoint's new state (unless read-only or unchanged) and hands it to its dispatcher.
    pub(crate) async fn replace_endpoint(&self, current: &Endpoint, mut next: Endpoint) {
        let id = current.id.clone();
        if next == *current {
            return;
        }
        next.updated_at = now_ms();
        if !next.read_only {
            if let Err(e) = self.store.put_endpoint(&id, document(&next)).await {
                tracing::error!(endpoint = %id, error = %e, "cannot store the endpoint's state");
            }
        }
        if let Ok(workers) = self.endpoints.lock() {
            if let Some(w) = workers.get(&id) {
                w.endpoint.send_replace(Arc::new(next));
            }
        }
    }

    pub(crate) fn endpoint(&self, id: &str) -> Option<Arc<Endpoint>> {
        let workers = self.endpoints.lock().ok()?;
        workers.get(id).map(|w| w.endpoint.borrow().clone())
    }
}

pub(crate) fn document(e: &Endpoint) -> String {
    serde_json::to_string(e).unwrap_or_default()
}

/// The running webhook engine. Cloning shares it.
#[derive(Clone)]
pub struct WebhookEngine {
    pub(crate) shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    background: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

const FEATURES_KEY: &str = "webhook.features";

impl WebhookEngine {
    /// Starts the engine: loads the endpoints and features, adds the config file's endpoints
    /// (read-only; `secret_seed` derives their secrets when the config gives none) and starts a
    /// dispatcher for each.
    pub async fn start(
        log: Arc<dyn EventLog>,
        store: Arc<dyn WebhookStore>,
        config: WebhookConfig,
        secret_seed: &str,
        metrics: WebhookMetrics,
    ) -> Result<WebhookEngine, EngineError> {
        config.validate().map_err(EngineError::Config)?;
        let deliverer = Deliverer::new(NetworkGuard::new(
            config.allowed_networks.clone(),
            config.blocked_networks.clone(),
        ))
        .map_err(|e| EngineError::Client(e.to_string()))?;
        let features = match store.setting(FEATURES_KEY).await? {
            Some(text) => serde_json::from_str(&text).unwrap_or(config.features),
            None => config.features,
        };
        let (attempts, writer) =
            AttemptLog::start(store.clone(), metrics.attempt_log_dropped.clone());
        let shared = Arc::new(Shared {
            log,
            store,
            deliverer,
            features: watch::channel(features).0,
            metrics,
            attempts,
            endpoints: Mutex::new(HashMap::new()),
            config,
        });
        let (stop, _) = watch::channel(false);
        let engine = WebhookEngine {
            shared: shared.clone(),
            stop: stop.clone(),
            background: Arc::new(Mutex::new(Vec::new())),
        };
        let mut stored = Vec::new();
        for (id, doc) in shared.store.endpoints().await? {
            match serde_json::from_str::<Endpoint>(&doc) {
                Ok(e) => stored.push(e),
                Err(e) => {
                    tracing::error!(endpoint = %id, error = %e, "skipping an unreadable endpoint")
                }
            }
        }
        for e in stored {
            engine.launch(e, StartAt::Head).await?;
        }
        for e in crate::config_endpoints::from_config(&shared.config, secret_seed)? {
            engine.launch(e, StartAt::Head).await?;
        }
        let pruner = tokio::spawn(attempt_log::prune(
            shared.store.clone(),
            shared.config.attempt_retention,
            shared.config.attempt_prune_interval,
            stop.subscribe(),
        ));
        if let Ok(mut bg) = engine.background.lock() {
            bg.extend([writer, pruner]);
        }
        Ok(engine)
    }

    /// Starts a dispatcher for `endpoint`.
    pub(crate) async fn launch(
        &self,
        endpoint: Endpoint,
        start: StartAt,
    ) -> Result<(), EngineError> {
        let id = endpoint.id.clone();
        let (endpoint_tx, endpoint_rx) = watch::channel(Arc::new(endpoint));
        let wake = Arc::new(Notify::new());
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut global_stop = self.stop.subscribe();
        let local_stop = stop_tx.clone();
        let dispatcher = Dispatcher::start(
            self.shared.clone(),
            endpoint_rx,
            wake.clone(),
            stop_rx,
            start,
        )
        .await?;
        let task = tokio::spawn(async move {
            let relay = tokio::spawn(async move {
                let _ = global_stop.wait_for(|s| *s).await;
                local_stop.send_replace(true);
            });
            dispatcher.run().await;
            relay.abort();
        });
        let worker = Worker {
            endpoint: endpoint_tx,
            wake,
            stop: stop_tx,
            task,
        };
        if let Ok(mut workers) = self.shared.endpoints.lock() {
            if let Some(old) = workers.insert(id, worker) {
                old.stop.send_replace(true);
            }
        }
        Ok(())
    }

    /// Every endpoint, sorted by creation.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        let mut list: Vec<Arc<Endpoint>> = self
            .shared
            .endpoints
            .lock()
            .map(|w| w.values().map(|w| w.endpoint.borrow().clone()).collect())
            .unwrap_or_default();
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        list
    }

    pub fn endpoint(&self, id: &str) -> Option<Arc<Endpoint>> {
        self.shared.endpoint(id)
    }

    /// Stores a new endpoint and starts delivering events appended from now on.
    pub async fn create(&self, endpoint: Endpoint) -> Result<(), EngineError> {
        self.shared
            .store
            .put_endpoint(&endpoint.id, document(&endpoint))
            .await?;
        self.launch(endpoint, StartAt::Head).await
    }

    /// Stores a changed endpoint; its dispatcher picks the change up.
    pub async fn update(&self, endpoint: Endpoint) -> Result<(), EngineError> {
        self.shared
            .store
            .put_endpoint(&endpoint.id, document(&endpoint))
            .await?;
        if let Ok(workers) = self.shared.endpoints.lock() {
            if let Some(w) = workers.get(&endpoint.id) {
                w.endpoint.send_replace(Arc::new(endpoint));
                w.wake.notify_one();
            }
        }
        Ok(())
    }

    /// Stops and forgets an endpoint, with its cursor, pending deliveries and attempts.
    pub async fn delete(&self, id: &str) -> Result<bool, EngineError> {
        let worker = self
            .shared
            .endpoints
            .lock()
            .ok()
            .and_then(|mut w| w.remove(id));
        if let Some(w) = worker {
            w.stop.send_replace(true);
            let _ = tokio::time::timeout(Duration::from_secs(10), w.task).await;
        }
        Ok(self
            .shared
            .store
            .delete_endpoint(id, &consumer_name(id))
            .await?)
    }

    /// Wakes an endpoint's dispatcher (after a replay).
    pub fn wake(&self, id: &str) {
        if let Ok(workers) = self.shared.endpoints.lock() {
            if let Some(w) = workers.get(id) {
                w.wake.notify_one();
            }
        }
    }

    pub fn features(&self) -> Features {
        *self.shared.features.borrow()
    }

    pub async fn set_features(&self, features: Features) -> Result<(), EngineError> {
        let text = serde_json::to_string(&features).unwrap_or_default();
        self.shared.store.put_setting(FEATURES_KEY, text).await?;
        self.shared.features.send_replace(features);
        Ok(())
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.shared.config
    }

    pub fn store(&self) -> &Arc<dyn WebhookStore> {
        &self.shared.store
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.shared.log
    }

    pub fn metrics(&self) -> &WebhookMetrics {
        &self.shared.metrics
    }

    /// Sends `delivery` to `endpoint` once, outside its dispatcher (test sends), logging the attempt.
    pub(crate) async fn send_once(
        &self,
        endpoint: &Endpoint,
        delivery: &crate::dispatcher::attempt::Delivery,
    ) -> (i64, crate::client::AttemptResult) {
        crate::dispatcher::attempt::send(
            &self.shared.deliverer,
            &self.shared.attempts,
            endpoint,
            delivery,
        )
        .await
    }

    /// Stops every dispatcher after its in-flight attempts end, and flushes the attempt log.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let tasks: Vec<JoinHandle<()>> = self
            .shared
            .endpoints
            .lock()
            .map(|mut w| w.drain().map(|(_, w)| w.task).collect())
            .unwrap_or_default();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        // Every dispatcher has recorded its last attempt: wait until the writer has stored them all.
        self.shared.attempts.flush().await;
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

/// Defaults of a new endpoint.
pub fn new_endpoint(
    id: String,
    url: String,
    flavour: Flavour,
    events: Vec<EventKind>,
    secret: String,
) -> Endpoint {
    let now = now_ms();
    Endpoint {
        id,
        url,
        flavour,
        events,
        secret,
        previous_secret: None,
        enabled: true,
        disabled_reason: None,
        description: String::new(),
        timeout_ms: 5_000,
        max_in_flight: 32,
        rate_limit_per_s: None,
        created_at: now,
        updated_at: now,
        read_only: false,
        failing_since: None,
        disabled_at: None,
        log_released: None,
        gap: None,
    }
}
