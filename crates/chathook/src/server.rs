//! A running server: its start in steps (listeners, store, metrics, the IM core, the webhook engine, the
//! HTTP app, the serving tasks) and its graceful stop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use chathook_events::EventLog;
use chathook_http::listen;
use chathook_im::{Im, ImConfig, ImMetrics};
use chathook_store::sealing::Sealer;
use chathook_store::{
    ClusterStore, PgOptions, PgStore, RelayStore, ServerStore, SqliteOptions, SqliteStore, Store,
    WebhookStore,
};
use chathook_webhook::{WebhookEngine, WebhookMetrics};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::metrics::MetricsState;
use crate::Config;
use crate::{
    auth, config, console, data_dir, health, no_sniff, not_found, openapi, overview, secrets,
};

/// A running server.
pub struct Server {
    im: Im,
    webhooks: WebhookEngine,
    store: Arc<dyn ServerStore>,
    /// Where the TCP gateway listens (`None` when it is off or its default port was taken).
    tcp_addr: Option<std::net::SocketAddr>,
    /// Where relay ingest listens when `relay.addr` gives it its own address.
    relay_addr: Option<std::net::SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// The server's listeners: the API's and the WebSocket gateway's (given), the TCP gateway's and relay
/// ingest's (bound here when configured).
struct Listeners {
    api: TcpListener,
    ws: TcpListener,
    tcp: Option<TcpListener>,
    /// Relay ingest on its own address (`relay.addr`), so that the admin API can stay private.
    relay: Option<TcpListener>,
}

impl Listeners {
    fn bind(config: &Config, api: TcpListener, ws: TcpListener) -> anyhow::Result<Listeners> {
        let tcp = bind_tcp(config)?;
        let relay = match config.relay.addr {
            Some(addr) => Some(
                listen::bind(addr, config.listen.backlog)
                    .with_context(|| format!("cannot listen on relay.addr {addr}"))?,
            ),
            None => None,
        };
        Ok(Listeners {
            api,
            ws,
            tcp,
            relay,
        })
    }

    /// The base of relay ingest URLs when `relay.public_url` is unset: relay ingest's own address, or
    /// the API's.
    fn ingest_base(&self) -> anyhow::Result<String> {
        let listener = self.relay.as_ref().unwrap_or(&self.api);
        Ok(format!("http://{}", listener.local_addr()?))
    }
}

impl Server {
    /// Opens the store, starts the IM core and the webhook engine, and serves the API, the gateways and
    /// relay ingest on their listeners.
    pub async fn start(
        config: Config,
        api_listener: TcpListener,
        ws_listener: TcpListener,
    ) -> anyhow::Result<Server> {
        let (admin_key, sealer) = keys(&config)?;
        let listeners = Listeners::bind(&config, api_listener, ws_listener)?;
        let (store, cluster) = open_store(&config).await?;
        data_dir::warn_if_open(&config.data_dir);
        tracing::info!(store = %store.describe(), "store open");

        let (mut registry, gauges) = crate::metrics::registry(&*store);
        let im = start_im(
            &config,
            &listeners,
            &store,
            &cluster,
            sealer.clone(),
            &mut registry,
        )
        .await?;
        let webhooks = start_webhooks(
            &config,
            &listeners,
            &store,
            &cluster,
            (&admin_key, sealer),
            &mut registry,
        )
        .await?;
        // Before-send hooks: the IM core asks the endpoints that answer them.
        im.set_before_send(webhooks.before_send());

        let overview_sources = overview::Sources {
            im: im.clone(),
            webhooks: webhooks.clone(),
            store: store.clone(),
            cluster: cluster.clone().map(|shared| {
                let timeout = Duration::from_millis(config.cluster.node_timeout_ms);
                (shared, timeout)
            }),
        };
        let metrics = MetricsState {
            registry: Arc::new(registry),
            store: store.clone(),
            gauges,
        };
        let api = api_router(
            &config,
            admin_key,
            &im,
            &webhooks,
            overview_sources.clone(),
            metrics,
        );
        warn_about_settings(&config);

        let (stop, stop_rx) = watch::channel(false);
        let (tcp_addr, relay_addr) = (local_addr(&listeners.tcp)?, local_addr(&listeners.relay)?);
        let serving = Serving {
            limits: connection_limits(&config.listen),
            stop: stop_rx,
            tasks: Vec::new(),
        };
        let mut tasks = serving.all(&config, listeners, api, &im, &webhooks)?;
        tasks.push(tokio::spawn(prune_loop(
            store.clone(),
            config.clone(),
            stop.subscribe(),
        )));
        if let Some(shared) = cluster {
            let every = Duration::from_millis(config.cluster.heartbeat_ms);
            let publish = overview::publish(overview_sources, shared, every, stop.subscribe());
            tasks.push(tokio::spawn(publish));
        }
        Ok(Server {
            im,
            webhooks,
            store,
            tcp_addr,
            relay_addr,
            stop,
            tasks,
        })
    }

    /// Where relay ingest listens when it has its own address (`relay.addr`).
    pub fn relay_addr(&self) -> Option<std::net::SocketAddr> {
        self.relay_addr
    }

    /// Where the TCP gateway listens, when it does.
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp_addr
    }

    /// The store (the event log's consumer API is on it).
    pub fn store(&self) -> &Arc<dyn ServerStore> {
        &self.store
    }

    /// The IM core.
    pub fn im(&self) -> &Im {
        &self.im
    }

    /// The webhook engine.
    pub fn webhooks(&self) -> &WebhookEngine {
        &self.webhooks
    }

    /// Disconnects every client (each is reported offline), stops serving, lets in-flight webhook
    /// attempts finish, and waits for the tasks.
    pub async fn stop(self) {
        tracing::info!("shutting down: disconnecting clients");
        self.im.shutdown().await;
        self.webhooks.shutdown().await;
        self.stop.send_replace(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        tracing::info!("stopped");
    }
}

/// The data dir made, the admin key and the secrets key read (or generated).
fn keys(config: &Config) -> anyhow::Result<(String, Sealer)> {
    data_dir::create(&config.data_dir)
        .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
    let admin_key = auth::resolve_admin_key(config.admin_key.as_deref(), &config.data_dir)
        .context("cannot set up the admin key")?;
    let sealer = secrets::resolve(config).context("cannot set up the secrets key")?;
    tracing::info!(fingerprint = %sealer.fingerprint(), "secrets key");
    Ok((admin_key, sealer))
}

/// The IM core, with its metrics and, in a cluster, joined to the other nodes.
async fn start_im(
    config: &Config,
    listeners: &Listeners,
    store: &Arc<dyn ServerStore>,
    cluster: &Option<Arc<dyn ClusterStore>>,
    sealer: Sealer,
    registry: &mut Registry,
) -> anyhow::Result<Im> {
    let im_metrics = ImMetrics::default();
    im_metrics.register(registry);
    let im_config = ImConfig {
        limits: config.limits.clone(),
        gateway: config.gateway.clone(),
        messages: config.messages.clone(),
        route: chathook_im::RouteConfig {
            ws_addr: match config.route.ws_addr.as_str() {
                "" => format!("ws://{}", listeners.ws.local_addr()?),
                set => set.to_string(),
            },
            tcp_addr: match (config.route.tcp_addr.as_str(), &listeners.tcp) {
                ("", Some(tcp)) => tcp.local_addr()?.to_string(),
                (set, _) => set.to_string(),
            },
            ..config.route.clone()
        },
        node_id: config.node_id,
        cluster: config.cluster.clone(),
        usersig: config.tencent.user_sig_key(),
        throttle: config.auth.throttle.clone(),
    };
    let im = Im::start(
        store.clone() as Arc<dyn Store>,
        im_config,
        sealer,
        im_metrics,
    )
    .await
    .context("cannot start the IM core")?;
    if let Some(shared) = cluster.clone() {
        im.join_cluster(shared)
            .await
            .context("cannot join the cluster (cluster.nats_url)")?;
    }
    Ok(im)
}

/// The webhook engine (with relay mode's sources), its metrics and, in a cluster, its leases.
/// `keys` is the admin key (which derives the config file's endpoint secrets) and the sealer.
async fn start_webhooks(
    config: &Config,
    listeners: &Listeners,
    store: &Arc<dyn ServerStore>,
    cluster: &Option<Arc<dyn ClusterStore>>,
    (admin_key, sealer): (&str, Sealer),
    registry: &mut Registry,
) -> anyhow::Result<WebhookEngine> {
    let webhook_metrics = WebhookMetrics::default();
    webhook_metrics.register(registry);
    WebhookEngine::start(
        store.clone() as Arc<dyn EventLog>,
        store.clone() as Arc<dyn WebhookStore>,
        store.clone() as Arc<dyn RelayStore>,
        chathook_webhook::WebhookConfig {
            tencent_sdk_app_id: config.tencent.sdk_app_id,
            relay: config.relay.clone(),
            api_base_url: listeners.ingest_base()?,
            ..config.webhook.clone()
        },
        admin_key,
        sealer,
        webhook_metrics,
        cluster.clone().map(|shared| {
            chathook_webhook::Leasing::new(shared, Duration::from_millis(config.cluster.lease_ms))
        }),
    )
    .await
    .context("cannot start the webhook engine")
}

/// The API's HTTP app: `/health`, `/metrics`, `/openapi.json`, the documented routes and the console.
/// The admin key wraps the whole app, unknown paths included; only `auth::PUBLIC_PATHS`, the console's
/// own files and relay ingest URLs (their own credential) pass without it, so a route added later
/// cannot skip the check.
fn api_router(
    config: &Config,
    admin_key: String,
    im: &Im,
    webhooks: &WebhookEngine,
    overview_sources: overview::Sources,
    metrics: MetricsState,
) -> Router {
    // The routes described in the OpenAPI document, which is made from them.
    let (documented, document) =
        OpenApiRouter::with_openapi(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
            .routes(routes!(overview::overview))
            .with_state(overview_sources)
            .merge(chathook_im::api::router(im.clone()))
            .merge(chathook_webhook::api::router(webhooks.clone()))
            .split_for_parts();
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(crate::metrics::metrics).with_state(metrics))
        .route("/openapi.json", openapi::route(document))
        .merge(documented)
        .merge(console::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            auth::AdminKey {
                key: admin_key.into(),
                open_networks: config
                    .auth
                    .open
                    .then(|| config.auth.open_networks.clone().into()),
                throttle: im.throttle().clone(),
            },
            auth::require_admin_key,
        ))
        // Outermost, so that refusals carry it too.
        .layer(axum::middleware::map_response(no_sniff))
}

/// Says at start what the settings leave open: open mode's networks, the webhook settings accepted
/// but not followed.
fn warn_about_settings(config: &Config) {
    if config.auth.open {
        let nets: Vec<String> = config
            .auth
            .open_networks
            .iter()
            .map(|n| n.to_string())
            .collect();
        tracing::warn!(
            networks = %nets.join(", "),
            "auth.open is on: server API calls without the admin key are accepted from these networks"
        );
    }
    for warning in config.webhook.warnings() {
        tracing::warn!("{warning}");
    }
}

fn local_addr(listener: &Option<TcpListener>) -> anyhow::Result<Option<std::net::SocketAddr>> {
    Ok(match listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    })
}

/// What every listener is served with: the shared connection limits and the stop signal.
struct Serving {
    limits: Arc<listen::ConnLimits>,
    stop: watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Serving {
    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Runs `task` until the stop, logging how it failed as `what`.
    fn spawn<E: std::fmt::Display>(
        &mut self,
        what: &'static str,
        task: impl std::future::Future<Output = Result<(), E>> + Send + 'static,
    ) {
        self.tasks.push(tokio::spawn(async move {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "{what} failed");
            }
        }));
    }

    /// Serves the API, the WebSocket gateway, the TCP gateway and relay ingest (on its own listener, or
    /// beside the API) on their listeners.
    fn all(
        mut self,
        config: &Config,
        listeners: Listeners,
        mut api: Router,
        im: &Im,
        webhooks: &WebhookEngine,
    ) -> anyhow::Result<Vec<JoinHandle<()>>> {
        let ingest = chathook_webhook::relay::ingest::router(
            webhooks.relay().clone(),
            config.limits.max_http_body_bytes,
        );
        if listeners.relay.is_none() {
            api = api.merge(ingest.clone());
        }
        let show = |l: &Option<TcpListener>| {
            l.as_ref()
                .and_then(|t| t.local_addr().ok())
                .map_or("off".into(), |a| a.to_string())
        };
        tracing::info!(api = %listeners.api.local_addr()?, ws = %listeners.ws.local_addr()?,
            tcp = %show(&listeners.tcp), relay = %show(&listeners.relay), "chathook is serving");
        let api = listen::serve(listeners.api, api, self.limits.clone(), self.stopped());
        self.spawn("the API server", api);
        let ws = chathook_im::gateway::serve(
            listeners.ws,
            im.clone(),
            self.limits.clone(),
            self.stopped(),
        );
        self.spawn("the gateway", ws);
        if let Some(relay) = listeners.relay {
            let app = ingest
                .route("/health", get(health))
                .layer(axum::middleware::map_response(no_sniff));
            let task = listen::serve(relay, app, self.limits.clone(), self.stopped());
            self.spawn("the relay listener", task);
        }
        if let Some(tcp) = listeners.tcp {
            let task = chathook_im::gateway::tcp::serve(
                tcp,
                im.clone(),
                self.limits.clone(),
                self.stopped(),
            );
            self.spawn("the TCP gateway", task);
        }
        Ok(self.tasks)
    }
}

/// Binds the TCP gateway (`gateway.tcp_addr`): an address the operator set must be free; the default is
/// skipped with a warning when another process holds it (several servers on one machine).
fn bind_tcp(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    let Some((addr, required)) = config.tcp_listener().map_err(anyhow::Error::msg)? else {
        return Ok(None);
    };
    match listen::bind(addr, config.listen.backlog) {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if !required && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(%addr, "the TCP gateway's default address is taken: no TCP gateway (set gateway.tcp_addr)");
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on gateway.tcp_addr {addr}")),
    }
}

/// The listeners' shared limits under this process's descriptor limit (raised to its maximum first).
fn connection_limits(config: &listen::ListenConfig) -> Arc<listen::ConnLimits> {
    let descriptors = listen::descriptor_limit();
    let limits = listen::ConnLimits::new(config, descriptors);
    let caps = limits.admission.caps().clone();
    tracing::info!(
        descriptors,
        connections = caps.total,
        per_address = caps.per_address,
        unauthenticated = caps.unauthenticated,
        "connection limits"
    );
    limits
}

/// Opens the configured backend: the embedded store in `data_dir`, or PostgreSQL; with
/// `cluster.nats_url`, also the database as the nodes' coordination.
async fn open_store(
    config: &Config,
) -> anyhow::Result<(Arc<dyn ServerStore>, Option<Arc<dyn ClusterStore>>)> {
    match config.storage.backend {
        config::Backend::Sqlite => {
            let file = config.data_dir.join(chathook_store::SQLITE_FILE);
            let new = !file.exists();
            let mut options = SqliteOptions::new(&config.data_dir);
            options.node_id = config.node_id;
            options.max_batch = config.store.max_batch;
            options.queue_capacity = config.store.queue_capacity;
            options.tail_events = config.store.tail_events;
            options.tail_bytes = config.store.tail_bytes;
            let store = SqliteStore::open(options).with_context(|| {
                format!("cannot open the store in {}", config.data_dir.display())
            })?;
            // SQLite makes the file as the umask says; its WAL and shared memory take its mode.
            if new {
                for suffix in ["", "-wal", "-shm"] {
                    let path = PathBuf::from(format!("{}{suffix}", file.display()));
                    if path.exists() {
                        data_dir::make_private(&path)
                            .with_context(|| format!("cannot make {} private", path.display()))?;
                    }
                }
            }
            Ok((Arc::new(store), None))
        }
        config::Backend::Postgres => {
            let url = config.storage.postgres_url.as_deref().unwrap_or_default();
            let options = PgOptions {
                max_batch: config.store.max_batch,
                queue_capacity: config.store.queue_capacity,
                ..PgOptions::new(config.storage.postgres_max_connections, config.node_id)
            };
            let store = PgStore::connect_with(url, options)
                .await
                .context("cannot open the PostgreSQL store (storage.postgres_url)")?;
            let store = Arc::new(store);
            let cluster = config
                .cluster
                .enabled()
                .then(|| store.clone() as Arc<dyn ClusterStore>);
            Ok((store, cluster))
        }
    }
}

/// Removes expired idempotency keys and acknowledged old events, periodically.
async fn prune_loop(store: Arc<dyn ServerStore>, config: Config, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(config.events.prune_interval_secs);
    let retention_ms = (config.events.retention_hours as i64).saturating_mul(3_600_000);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(every) => {}
        }
        match store
            .prune(config.messages.dedup_window_secs, retention_ms)
            .await
        {
            Ok((keys, events)) if keys + events > 0 => {
                tracing::debug!(keys, events, "pruned");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning failed"),
        }
    }
}
