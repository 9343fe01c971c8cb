//! The PostgreSQL store (`storage.backend = "postgres"`), for several chathook nodes sharing one
//! database: the connection pool, the versioned migrations (safe when several nodes start at once), the
//! node's group-committing writer (`writer`), the event log (`event_log`), `UserStore` (`users`),
//! `ChannelStore` (`channels`), `MessageStore` (`messages`), `CmdQueueStore` (`cmd_queue`),
//! `ConversationStore` (`conversations`), `PresenceStore` (`presence`, by node), `WebhookStore`
//! (`webhook`), and what the nodes coordinate through (`cluster`: commits, heartbeats, leases). The
//! embedded SQLite store stays the default for one node.

mod appends;
mod channels;
mod cluster;
mod cmd_queue;
mod conversations;
mod event_log;
mod messages;
mod presence;
mod relay;
mod schema;
mod users;
mod webhook;
mod writer;

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{mpsc, watch};
use tokio_postgres::NoTls;

use crate::{Maintenance, StoreError, WriterMetrics};

pub use schema::LATEST_VERSION;

/// A pool of connections to one PostgreSQL database, migrated to the latest schema. Cloning shares it.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// The node's writer: writes queue here and commit in groups.
    writes: mpsc::Sender<writer::Job>,
    /// The newest committed event log position this node knows of (its own appends, and other nodes'
    /// through their notifications).
    head: Arc<watch::Sender<u64>>,
    /// This node's message ids (its node id in every one).
    ids: Arc<std::sync::Mutex<crate::Snowflake>>,
    /// This node's id: its connections are recorded under it.
    node_id: u16,
    metrics: WriterMetrics,
    /// The database, for the log (host, port and name; never the password).
    described: String,
    /// Who the writer tells of each commit (the cluster's relay), once set.
    observer: Arc<std::sync::OnceLock<crate::CommitObserver>>,
}

/// How a node uses its PostgreSQL database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections the node keeps open.
    pub max_connections: usize,
    /// Goes into every message id and connection record of this node.
    pub node_id: u16,
    /// Most writes one commit takes (`store.max_batch`).
    pub max_batch: usize,
    /// Writes waiting for the writer; beyond this a write waits (`store.queue_capacity`).
    pub queue_capacity: usize,
}

impl PgOptions {
    /// `max_connections` and `node_id`, with the store's default batch and queue.
    pub fn new(max_connections: usize, node_id: u16) -> PgOptions {
        PgOptions {
            max_connections,
            node_id,
            max_batch: 2048,
            queue_capacity: 16_384,
        }
    }
}

impl PgStore {
    /// Connects with `url` (a libpq connection string or URI), keeping up to `max_connections`, and
    /// brings the schema to the latest version. `node_id` goes into every message id this node makes.
    pub async fn connect(
        url: &str,
        max_connections: usize,
        node_id: u16,
    ) -> Result<PgStore, StoreError> {
        PgStore::connect_with(url, PgOptions::new(max_connections, node_id)).await
    }

    /// [`PgStore::connect`] with every option.
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let PgOptions {
            max_connections,
            node_id,
            max_batch,
            queue_capacity,
        } = options;
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Storage(format!("bad PostgreSQL URL: {e}")))?;
        let config_for_listen = config.clone();
        let config = plan_for_values(config);
        let described = describe(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| StoreError::Storage(format!("PostgreSQL pool: {e}")))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| StoreError::Storage(format!("PostgreSQL connection: {}", chain(&e))))?;
        schema::migrate(&mut client).await?;
        let at: i64 = client
            .query_one("SELECT position FROM event_log_head WHERE only_row", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        drop(client);
        let head = Arc::new(watch::Sender::new(at as u64));
        let (writes, queue) = mpsc::channel(queue_capacity.max(1));
        let metrics = WriterMetrics::default();
        let observer = Arc::new(std::sync::OnceLock::new());
        let ids = messages::ids(node_id);
        tokio::spawn(writer::run(
            pool.clone(),
            queue,
            head.clone(),
            metrics.clone(),
            observer.clone(),
            ids.clone(),
            max_batch.max(1),
        ));
        tokio::spawn(event_log::listen(config_for_listen, head.clone()));
        Ok(PgStore {
            pool,
            writes,
            head,
            ids,
            node_id,
            metrics,
            described,
            observer,
        })
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i32, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM chathook_migrations",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.get(0))
    }

    /// Queues `work` for the writer; the position of its last event once committed.
    async fn write<F>(&self, work: F) -> Result<u64, StoreError>
    where
        F: for<'t> FnOnce(
                &'t tokio_postgres::Transaction<'t>,
            ) -> futures_util::future::BoxFuture<
                't,
                Result<Vec<chathook_events::Event>, StoreError>,
            > + Send
            + 'static,
    {
        self.submit(writer::Task::Work(Box::new(work))).await
    }

    /// Queues `task` for the writer; the position of its last event once committed.
    async fn submit(&self, task: writer::Task) -> Result<u64, StoreError> {
        let stopped = || StoreError::Storage("the writer has stopped".into());
        let (done, answer) = tokio::sync::oneshot::channel();
        self.writes
            .send(writer::Job { task, done })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Like [`PgStore::write`], for work that also answers a value (read once the commit is done).
    async fn write_with<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(
                &'t tokio_postgres::Transaction<'t>,
            ) -> futures_util::future::BoxFuture<
                't,
                Result<(T, Vec<chathook_events::Event>), StoreError>,
            > + Send
            + 'static,
    {
        let (value, answer) = tokio::sync::oneshot::channel();
        self.write(move |tx| {
            Box::pin(async move {
                let (v, events) = work(tx).await?;
                let _ = value.send(v);
                Ok(events)
            })
        })
        .await?;
        answer
            .await
            .map_err(|_| StoreError::Storage("the write gave no answer".into()))
    }

    /// One statement as a write of its own, causing no event; the rows it changed.
    async fn execute(
        &self,
        sql: impl Into<String>,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Send + Sync>>,
    ) -> Result<u64, StoreError> {
        let sql = sql.into();
        self.write_with(move |tx| {
            Box::pin(async move {
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let n = tx.execute(sql.as_str(), &refs).await.map_err(pg_error)?;
                Ok((n, Vec::new()))
            })
        })
        .await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Storage(format!("PostgreSQL connection: {}", chain(&e))))
    }
}

/// "PostgreSQL host:port/dbname" (never the password).
/// The writer prepares its statements once per connection (the pool's statement cache). Their
/// parameters are arrays, and PostgreSQL's generic plan for a prepared statement was slower than a
/// plan made for the values (REST sends 4.1-4.4k/s against 5.6-5.7k before the cache, 6.5k with
/// both: BENCHMARKS.md), so the pool's connections plan every execution for its values
/// (`plan_cache_mode`, PostgreSQL 12 or newer), after whatever options the URL sets.
fn plan_for_values(mut config: tokio_postgres::Config) -> tokio_postgres::Config {
    const CUSTOM: &str = "-c plan_cache_mode=force_custom_plan";
    let options = match config.get_options() {
        Some(set) if !set.trim().is_empty() => format!("{set} {CUSTOM}"),
        _ => CUSTOM.to_string(),
    };
    config.options(options);
    config
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "PostgreSQL {host}:{port}/{}",
        config.get_dbname().unwrap_or("postgres")
    )
}

#[async_trait::async_trait]
impl Maintenance for PgStore {
    async fn prune(
        &self,
        dedup_window_secs: u64,
        event_retention_ms: i64,
    ) -> Result<(usize, usize), StoreError> {
        self.write_with(move |tx| {
            Box::pin(async move {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let claims = tx
                    .execute(
                        "DELETE FROM client_msgs WHERE created_at < $1",
                        &[&(now_ms / 1000 - dedup_window_secs as i64)],
                    )
                    .await
                    .map_err(pg_error)?;
                let events = tx
                    .execute(
                        "DELETE FROM event_log WHERE at_ms < $1 AND position <= COALESCE(
                             (SELECT MIN(position) FROM consumers WHERE holds), 9223372036854775807)",
                        &[&(now_ms - event_retention_ms)],
                    )
                    .await
                    .map_err(pg_error)?;
                Ok(((claims as usize, events as usize), Vec::new()))
            })
        })
        .await
    }

    fn writer_metrics(&self) -> WriterMetrics {
        self.metrics.clone()
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}

/// A PostgreSQL error as a store error: a full disk or a read-only database is `Unwritable`.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::READ_ONLY_SQL_TRANSACTION => {
            StoreError::Unwritable(chain(&e))
        }
        _ => StoreError::Storage(chain(&e)),
    }
}

/// An error with its causes (the pool's and the driver's own words say little: "db error"; PostgreSQL's
/// message is in the source), each once.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::plan_for_values;

    #[test]
    fn connections_plan_for_values_after_the_urls_own_options() {
        let bare: tokio_postgres::Config = "postgres://u@localhost/db".parse().unwrap();
        assert_eq!(
            plan_for_values(bare).get_options(),
            Some("-c plan_cache_mode=force_custom_plan")
        );
        let with: tokio_postgres::Config =
            "postgres://u@localhost/db?options=-c%20statement_timeout%3D5s"
                .parse()
                .unwrap();
        assert_eq!(
            plan_for_values(with).get_options(),
            Some("-c statement_timeout=5s -c plan_cache_mode=force_custom_plan")
        );
    }
}
