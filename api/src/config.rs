//! Typed configuration. Every setting is a flag and an environment variable; `serve` and
//! `migrate` read the same database settings.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

#[derive(Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/ledger")]
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
    /// Which parts of the ledger this process runs.
    #[arg(
        long,
        env = "LEDGER_ROLES",
        value_enum,
        value_delimiter = ',',
        default_value = "api,relay,projector"
    )]
    pub roles: Vec<Role>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub relay: RelayArgs,
    /// Skip applying migrations at start-up (when `ledger migrate` runs as a separate step).
    #[arg(long, env = "LEDGER_SKIP_MIGRATIONS")]
    pub skip_migrations: bool,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub group_commit: GroupCommitArgs,
    /// How long in-flight requests may take to finish after a shutdown signal.
    #[arg(long, env = "LEDGER_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
}

#[derive(Args, Clone, Debug)]
pub struct GroupCommitArgs {
    /// Run every command in a transaction of its own instead of sharing transactions.
    #[arg(long, env = "LEDGER_NO_GROUP_COMMIT")]
    pub no_group_commit: bool,
    /// Most commands sharing one transaction.
    #[arg(long, env = "LEDGER_GROUP_COMMIT_MAX_BATCH", default_value_t = 64)]
    pub group_commit_max_batch: usize,
    /// How long a writer waits for more commands once it has one, in microseconds.
    #[arg(long, env = "LEDGER_GROUP_COMMIT_LINGER_US", default_value_t = 200)]
    pub group_commit_linger_us: u64,
    /// Writer tasks (each uses one connection while it writes).
    #[arg(long, env = "LEDGER_GROUP_COMMIT_WRITERS", default_value_t = 4)]
    pub group_commit_writers: usize,
}

impl GroupCommitArgs {
    pub fn settings(&self) -> Option<crate::group_commit::GroupCommitSettings> {
        (!self.no_group_commit).then(|| crate::group_commit::GroupCommitSettings {
            max_batch: self.group_commit_max_batch.max(1),
            linger: Duration::from_micros(self.group_commit_linger_us),
            writers: self.group_commit_writers.max(1),
        })
    }
}

#[derive(Args, Clone, Debug)]
pub struct AccessArgs {
    /// Bearer tokens and their roles: `write:TOKEN,read:TOKEN,admin:TOKEN` (several per
    /// role allowed; `write` may also read, `admin` may do everything).
    #[arg(long, env = "LEDGER_API_TOKENS", hide_env_values = true)]
    pub api_tokens: Option<String>,
    /// Serve without authentication (local experiments only): every caller is an admin.
    #[arg(long, env = "LEDGER_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Requests one token may have in flight; more are answered 429 with Retry-After.
    #[arg(long, env = "LEDGER_MAX_IN_FLIGHT_PER_TOKEN", default_value_t = 64)]
    pub max_in_flight_per_token: usize,
    /// Longest time a request may take before it is answered 503 `request_timeout`.
    #[arg(long, env = "LEDGER_REQUEST_TIMEOUT_MS", default_value_t = 15_000)]
    pub request_timeout_ms: u64,
}

impl AccessArgs {
    /// The tokens to check, `None` when authentication is explicitly off; refuses to start
    /// with neither, so a forgotten setting never serves an open ledger.
    pub fn tokens(&self) -> anyhow::Result<Option<crate::auth::Tokens>> {
        let configured = self.api_tokens.as_deref().unwrap_or_default();
        let tokens: crate::auth::Tokens = configured
            .parse()
            .map_err(|error| anyhow::anyhow!("LEDGER_API_TOKENS / --api-tokens: {error}"))?;
        match (tokens.is_empty(), self.insecure_no_auth) {
            (false, false) => Ok(Some(tokens)),
            (true, true) => Ok(None),
            (false, true) => {
                anyhow::bail!("both --api-tokens and --insecure-no-auth are set; choose one")
            }
            (true, false) => anyhow::bail!(
                "no API tokens configured: set LEDGER_API_TOKENS=\"write:…,read:…,admin:…\" \
                 (or pass --insecure-no-auth to serve without authentication, locally only)"
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The parts of the ledger one process can run; all of them by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The HTTP command and query API.
    Api,
    /// Publishes committed events to Kafka (one active relay at a time across processes).
    Relay,
    /// Consumes the events into the payments and notifications read models.
    Projector,
}

#[derive(Args, Clone, Debug)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// Prefix of every topic name, so tenants and tests can share a broker.
    #[arg(long, env = "LEDGER_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,
    /// Partitions of the topics the ledger creates when they are missing.
    #[arg(long, env = "LEDGER_TOPIC_PARTITIONS", default_value_t = 8)]
    pub topic_partitions: i32,
    /// Replication factor of the topics the ledger creates (3 on a production cluster).
    #[arg(long, env = "LEDGER_TOPIC_REPLICATION", default_value_t = 1)]
    pub topic_replication: i32,
    /// librdkafka `security.protocol` (plaintext, ssl, sasl_plaintext, sasl_ssl).
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL")]
    pub kafka_security_protocol: Option<String>,
    /// librdkafka `sasl.mechanism` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
    #[arg(long, env = "KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,
    #[arg(long, env = "KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    #[arg(long, env = "KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<String>,
    /// CA bundle to verify the brokers' certificates.
    #[arg(long, env = "KAFKA_SSL_CA_LOCATION")]
    pub kafka_ssl_ca_location: Option<String>,
}

impl KafkaArgs {
    pub fn settings(&self) -> eventstore::KafkaSettings {
        let mut settings =
            eventstore::KafkaSettings::new(self.kafka_brokers.clone(), self.topic_prefix.clone());
        settings.partitions = self.topic_partitions.max(1);
        settings.replication_factor = self.topic_replication.max(1);
        settings.security_protocol = self.kafka_security_protocol.clone();
        settings.sasl_mechanism = self.kafka_sasl_mechanism.clone();
        settings.sasl_username = self.kafka_sasl_username.clone();
        settings.sasl_password = self.kafka_sasl_password.clone();
        settings.ssl_ca_location = self.kafka_ssl_ca_location.clone();
        settings
    }
}

#[derive(Args, Clone, Debug)]
pub struct RelayArgs {
    /// Events published per batch (one checkpoint write per batch).
    #[arg(long, env = "LEDGER_RELAY_BATCH_SIZE", default_value_t = 20_000)]
    pub relay_batch_size: i64,
    /// Longest wait between looks at the store when no append notification arrives.
    #[arg(long, env = "LEDGER_RELAY_POLL_MS", default_value_t = 500)]
    pub relay_poll_ms: u64,
    /// How long a message may wait for the broker before its batch is retried.
    #[arg(long, env = "LEDGER_RELAY_MESSAGE_TIMEOUT_MS", default_value_t = 15_000)]
    pub relay_message_timeout_ms: u64,
}

impl RelayArgs {
    pub fn settings(&self) -> eventstore::RelaySettings {
        eventstore::RelaySettings {
            batch_size: self.relay_batch_size.max(1),
            poll_interval: Duration::from_millis(self.relay_poll_ms.max(1)),
            message_timeout: Duration::from_millis(self.relay_message_timeout_ms.max(1)),
            ..eventstore::RelaySettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Role, ServeArgs};

    #[test]
    fn a_ledger_serves_every_role_unless_told_otherwise() {
        // Set in the environment, the variable would decide; the default is what is tested.
        if std::env::var_os("LEDGER_ROLES").is_some() {
            return;
        }
        let args = ServeArgs::parse_from(["serve", "--database-url", "postgres://x@y/z"]);
        assert_eq!(args.roles, [Role::Api, Role::Relay, Role::Projector]);
        let args = ServeArgs::parse_from([
            "serve",
            "--database-url",
            "postgres://x@y/z",
            "--roles",
            "api",
        ]);
        assert_eq!(args.roles, [Role::Api]);
    }
}
