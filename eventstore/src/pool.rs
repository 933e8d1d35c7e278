//! The connection pool. Bounded, with a wait timeout so that an exhausted pool or a dead
//! database answers "unavailable" quickly instead of piling up requests.

use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};

use crate::connection::Connector;
use crate::error::StoreError;

#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// libpq's connection string, TLS parameters included (see [`Connector`]).
    pub database_url: String,
    pub max_size: usize,
    /// How long a caller waits for a connection before the store reports `Unavailable`.
    pub wait_timeout: Duration,
    /// Server-side cap on any one statement, so a stuck query cannot hold a connection.
    pub statement_timeout: Duration,
}

impl PoolSettings {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            max_size: 16,
            wait_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// Builds the pool. No connection is opened until the first use, but the settings are
/// checked now: the connection string, and the TLS files it names are read.
pub fn connect(settings: &PoolSettings) -> Result<Pool, StoreError> {
    let connector = Connector::new(&settings.database_url)
        .map_err(|error| StoreError::Settings(Box::new(error)))?;
    let (mut config, tls) = connector.into_parts();
    config.application_name("ledger");
    config.connect_timeout(settings.wait_timeout);
    config.options(format!("-c statement_timeout={}", settings.statement_timeout.as_millis()));
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    Pool::builder(manager)
        .max_size(settings.max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.wait_timeout))
        .recycle_timeout(Some(settings.wait_timeout))
        .build()
        .map_err(|error| StoreError::Settings(Box::new(error)))
}

/// A connection within `budget` all told. The pool's own timeouts bound each step on its
/// own (waiting for a slot, opening a connection, recycling one), so against a server that
/// is going down — accepting connections it never answers, leaving dead ones in the pool —
/// one `get` could otherwise cost their sum.
pub async fn acquire_within(pool: &Pool, budget: Duration) -> Result<Object, StoreError> {
    match tokio::time::timeout(budget, pool.get()).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(PoolError::Timeout(TimeoutType::Wait).into()),
    }
}

/// A connection within the pool's wait timeout, all told (see [`acquire_within`]).
pub async fn acquire(pool: &Pool) -> Result<Object, StoreError> {
    acquire_within(pool, wait_timeout(pool)).await
}

/// How long a caller waits for a connection before the store reports `Unavailable`.
pub fn wait_timeout(pool: &Pool) -> Duration {
    pool.timeouts().wait.unwrap_or(PoolSettings::new("").wait_timeout)
}
