//! The chathook server binary's library: configuration, wiring and the HTTP edges (`/health`,
//! `/metrics`, `/openapi.json`, `/v1/overview`, the console's files, admin-key auth). It owns no domain
//! logic: the IM core lives in `chathook-im`, storage in `chathook-store`, events in `chathook-events`.
//!
//! [`run`] takes its listeners and a shutdown future (as mini-redis does), so tests start the real
//! server on ephemeral loopback ports and stop it the way a signal would.

pub mod auth;
pub mod config;
mod console;
pub mod data_dir;
pub mod openapi;
mod overview;
pub mod secrets;
pub mod wukongim_config;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chathook_events::EventLog;
use chathook_http::listen;
use chathook_im::{Im, ImConfig, ImMetrics};
use chathook_store::{
    ClusterStore, PgOptions, PgStore, ServerStore, SqliteOptions, SqliteStore, Store, WebhookStore,
};
use chathook_webhook::{WebhookEngine, WebhookMetrics};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::Config;

/// The routes this crate adds beside the IM core's and the webhook engine's, as (method, path).
pub const ROUTES: [(&str, &str); 1] = [("GET", "/v1/overview")];

/// State of the `/metrics` handler.
#[derive(Clone)]
struct MetricsState {
    registry: Arc<Registry>,
    store: Arc<dyn ServerStore>,
    event_log_head: Gauge,
    /// Events stored in the log (from the oldest to the head).
    event_log_events: Gauge,
    /// The lowest position a consumer holding the log has acknowledged (retention keeps what follows).
    event_log_held_from: Gauge,
}

async fn metrics(State(state): State<MetricsState>) -> impl IntoResponse {
    let head = state.store.head();
    state.event_log_head.set(head as i64);
    if let Ok(oldest) = state.store.oldest().await {
        let stored = oldest.map_or(0, |(first, _)| head.saturating_sub(first) + 1);
        state.event_log_events.set(stored as i64);
    }
    if let Ok(held) = state.store.held_from().await {
        state
            .event_log_held_from
            .set(held.map_or(head, |p| p) as i64);
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

async fn not_found() -> impl IntoResponse {
    (
        axum::http::StatusCode::NOT_FOUND,
        Json(
            json!({"status": 404, "msg": "no such route", "code": "not_found",
                    "error": {"code": "not_found", "message": "no such route"}}),
        ),
    )
}

/// Every answer's media type is the one it says: browsers must not guess another.
async fn no_sniff(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Runs the server until `shutdown` completes, then disconnects every client, reports them offline,
/// lets every pending write commit, and returns.
pub async fn run(
    config: Config,
    api_listener: TcpListener,
    ws_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let server = Server::start(config, api_listener, ws_listener).await?;
    shutdown.await;
    server.stop().await;
    Ok(())
}

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
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Opens the store, starts the IM core and serves the API and the gateway on the given listeners.
    pub async fn start(
        config: Config,
        api_listener: TcpListener,
        ws_listener: TcpListener,
    ) -> anyhow::Result<Server> {
        data_dir::create(&config.data_dir)
            .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
        let admin_key = auth::resolve_admin_key(config.admin_key.as_deref(), &config.data_dir)
            .context("cannot set up the admin key")?;
        let sealer = secrets::resolve(&config).context("cannot set up the secrets key")?;
        tracing::info!(fingerprint = %sealer.fingerprint(), "secrets key");
        let tcp_listener = bind_tcp(&config)?;
        // Relay ingest on its own listener, so that the admin API can stay private.
        let relay_listener = match config.relay.addr {
            Some(addr) => Some(
                listen::bind(addr, config.listen.backlog)
                    .with_context(|| format!("cannot listen on relay.addr {addr}"))?,
            ),
            None => None,
        };
        let ingest_base = match &relay_listener {
            Some(l) => format!("http://{}", l.local_addr()?),
            None => format!("http://{}", api_listener.local_addr()?),
        };
        let (store, cluster) = open_store(&config).await?;
        data_dir::warn_if_open(&config.data_dir);
        tracing::info!(store = %store.describe(), "store open");

        let mut registry = Registry::with_prefix("chathook");
        let im_metrics = ImMetrics::default();
        im_metrics.register(&mut registry);
        let writer = store.writer_metrics();
        registry.register(
            "store_commits",
            "Durable commits of the store's writer",
            writer.commits,
        );
        registry.register(
            "store_writes",
            "Writes committed (several per commit)",
            writer.jobs,
        );
        registry.register(
            "store_failed_commits",
            "Commits that failed",
            writer.failed_commits,
        );
        let event_log_head = Gauge::default();
        registry.register(
            "event_log_head",
            "Position of the newest event",
            event_log_head.clone(),
        );
        let event_log_events = Gauge::default();
        registry.register(
            "event_log_events",
            "Events stored in the event log",
            event_log_events.clone(),
        );
        let event_log_held_from = Gauge::default();
        registry.register(
            "event_log_held_from",
            "Lowest position acknowledged by a consumer holding the log (the head when none holds it)",
            event_log_held_from.clone(),
        );

        let im_config = ImConfig {
            limits: config.limits.clone(),
            gateway: config.gateway.clone(),
            messages: config.messages.clone(),
            route: chathook_im::RouteConfig {
                ws_addr: match config.route.ws_addr.as_str() {
                    "" => format!("ws://{}", ws_listener.local_addr()?),
                    set => set.to_string(),
                },
                tcp_addr: match (config.route.tcp_addr.as_str(), &tcp_listener) {
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
            sealer.clone(),
            im_metrics,
        )
        .await
        .context("cannot start the IM core")?;
        if let Some(shared) = cluster.clone() {
            im.join_cluster(shared)
                .await
                .context("cannot join the cluster (cluster.nats_url)")?;
        }

        let webhook_metrics = WebhookMetrics::default();
        webhook_metrics.register(&mut registry);
        let webhooks = WebhookEngine::start(
            store.clone() as Arc<dyn EventLog>,
            store.clone() as Arc<dyn WebhookStore>,
            store.clone() as Arc<dyn chathook_store::RelayStore>,
            chathook_webhook::WebhookConfig {
                tencent_sdk_app_id: config.tencent.sdk_app_id,
                relay: config.relay.clone(),
                api_base_url: ingest_base,
                ..config.webhook.clone()
            },
            &admin_key,
            sealer,
            webhook_metrics,
            cluster.clone().map(|shared| {
                chathook_webhook::Leasing::new(
                    shared,
                    Duration::from_millis(config.cluster.lease_ms),
                )
            }),
        )
        .await
        .context("cannot start the webhook engine")?;
        // Before-send hooks: the IM core asks the endpoints that answer them.
        im.set_before_send(webhooks.before_send());

        let overview_sources = overview::Sources {
            im: im.clone(),
            webhooks: webhooks.clone(),
            store: store.clone(),
            cluster: cluster.clone().map(|shared| {
                (
                    shared,
                    Duration::from_millis(config.cluster.node_timeout_ms),
                )
            }),
        };
        let ingest = chathook_webhook::relay::ingest::router(
            webhooks.relay().clone(),
            config.limits.max_http_body_bytes,
        );
        // The routes described in the OpenAPI document, which is made from them.
        let (documented, document) =
            OpenApiRouter::with_openapi(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
                .routes(routes!(overview::overview))
                .with_state(overview_sources.clone())
                .merge(chathook_im::api::router(im.clone()))
                .merge(chathook_webhook::api::router(webhooks.clone()))
                .split_for_parts();
        // The admin key wraps the whole app, unknown paths included; only `auth::PUBLIC_PATHS` and the
        // console's own files pass without it, so a route added later cannot skip the check.
        let api = Router::new()
            .route("/health", get(health))
            .route(
                "/metrics",
                get(metrics).with_state(MetricsState {
                    registry: Arc::new(registry),
                    store: store.clone(),
                    event_log_head,
                    event_log_events,
                    event_log_held_from,
                }),
            )
            .route("/openapi.json", openapi::route(document))
            .merge(documented)
            .merge(match relay_listener {
                Some(_) => Router::new(),
                None => ingest.clone(),
            })
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
            .layer(axum::middleware::map_response(no_sniff));
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

        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tracing::info!(api = %api_listener.local_addr()?, ws = %ws_listener.local_addr()?,
            tcp = %tcp_listener.as_ref().and_then(|t| t.local_addr().ok()).map_or("off".into(), |a| a.to_string()),
            "chathook is serving");
        let limits = connection_limits(&config.listen);
        let api_task = listen::serve(api_listener, api, limits.clone(), stopped(stop_rx.clone()));
        let ws_task = chathook_im::gateway::serve(
            ws_listener,
            im.clone(),
            limits.clone(),
            stopped(stop_rx.clone()),
        );
        let tcp_addr = match &tcp_listener {
            Some(tcp) => Some(tcp.local_addr()?),
            None => None,
        };
        let mut tasks = vec![
            tokio::spawn(async move {
                if let Err(e) = api_task.await {
                    tracing::error!(error = %e, "the API server failed");
                }
            }),
            tokio::spawn(async move {
                if let Err(e) = ws_task.await {
                    tracing::error!(error = %e, "the gateway failed");
                }
            }),
            tokio::spawn(prune_loop(store.clone(), config.clone(), stop_rx.clone())),
        ];
        let relay_addr = match relay_listener {
            Some(listener) => {
                let addr = listener.local_addr()?;
                tracing::info!(relay = %addr, "relay ingest listens on its own address");
                let app = ingest
                    .route("/health", get(health))
                    .layer(axum::middleware::map_response(no_sniff));
                let task = listen::serve(listener, app, limits.clone(), stopped(stop_rx.clone()));
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = task.await {
                        tracing::error!(error = %e, "the relay listener failed");
                    }
                }));
                Some(addr)
            }
            None => None,
        };
        if let Some(tcp) = tcp_listener {
            let tcp_task =
                chathook_im::gateway::tcp::serve(tcp, im.clone(), limits, stopped(stop_rx.clone()));
            tasks.push(tokio::spawn(async move {
                if let Err(e) = tcp_task.await {
                    tracing::error!(error = %e, "the TCP gateway failed");
                }
            }));
        }
        if let Some(shared) = cluster {
            tasks.push(tokio::spawn(overview::publish(
                overview_sources,
                shared,
                Duration::from_millis(config.cluster.heartbeat_ms),
                stop_rx,
            )));
        }
        Ok(Server {
            im,
            webhooks,
            store,
            tcp_addr,
            relay_addr,
            stop: stop_tx,
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
