//! The PostgreSQL store (`storage.backend = "postgres"`, issue 13), for several chathook nodes sharing
//! one database. It is being built trait by trait; so far it owns the connection pool and the versioned
//! migrations, which are safe when several nodes start at once. The embedded SQLite store stays the
//! default for one node.

mod schema;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::StoreError;

pub use schema::LATEST_VERSION;

/// A pool of connections to one PostgreSQL database, migrated to the latest schema.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl PgStore {
    /// Connects with `url` (a libpq connection string or URI), keeping up to `max_connections`, and
    /// brings the schema to the latest version.
    pub async fn connect(url: &str, max_connections: usize) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Storage(format!("bad PostgreSQL URL: {e}")))?;
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
        let store = PgStore { pool };
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        Ok(store)
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

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Storage(format!("PostgreSQL connection: {e}")))
    }
}

/// A PostgreSQL error as a store error: a full disk or a read-only database is `Unwritable`.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::READ_ONLY_SQL_TRANSACTION => {
            StoreError::Unwritable(e.to_string())
        }
        _ => StoreError::Storage(e.to_string()),
    }
}
