//! Typed configuration. Every setting is a flag and an environment variable; `serve` and
//! `migrate` read the same database settings.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

#[derive(Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/ledger"
    )]
    pub database_url: String,
    /// Maximum connections in the pool.
    #[arg(long, env = "LEDGER_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,
    /// How long a request waits for a free connection before answering 503.
    #[arg(long, env = "LEDGER_DB_WAIT_TIMEOUT_MS", default_value_t = 5_000)]
    pub db_wait_timeout_ms: u64,
    /// Server-side limit on any single statement.
    #[arg(long, env = "LEDGER_DB_STATEMENT_TIMEOUT_MS", default_value_t = 10_000)]
    pub db_statement_timeout_ms: u64,
}

impl DatabaseArgs {
    pub fn pool_settings(&self) -> eventstore::PoolSettings {
        eventstore::PoolSettings {
            database_url: self.database_url.clone(),
            max_size: self.db_pool_size.max(1),
            wait_timeout: Duration::from_millis(self.db_wait_timeout_ms),
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms),
        }
    }
}

/// `ledger serve`.
#[derive(Parser, Clone, Debug)]
#[command(name = "serve")]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address the HTTP API listens on (port 0 picks a free one).
    #[arg(long, env = "LEDGER_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// Prefix of every topic name, so tenants and tests can share a broker.
    #[arg(long, env = "LEDGER_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,
    /// Skip applying migrations at start-up (when `ledger migrate` runs as a separate step).
    #[arg(long, env = "LEDGER_SKIP_MIGRATIONS")]
    pub skip_migrations: bool,
    /// How long in-flight requests may take to finish after a shutdown signal.
    #[arg(long, env = "LEDGER_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
