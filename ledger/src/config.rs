//! Configuration as people write it: every setting is a flag and an environment variable
//! (`ledger serve --help` lists them), parsed into [`Settings`]. A value that cannot work
//! stops the process at start-up with a message naming the setting; booleans accept
//! `1/0`, `true/false`, `yes/no`, `on/off`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use api::Tokens;
use clap::builder::{BoolishValueParser, TypedValueParser};
use clap::{value_parser, ArgAction, Args, Parser, ValueEnum};
use commands::GroupCommitSettings;
use eventstore::PoolSettings;

use crate::bus_args::BusArgs;
use crate::delivery_args::DeliveryArgs;
use crate::idempotency_args::IdempotencyArgs;
use crate::payment_args::PaymentArgs;
use crate::settings::*;

#[derive(Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Maximum connections in the pool.
    #[arg(long, env = "LEDGER_DB_POOL_SIZE", default_value_t = DEFAULT_POOL_SIZE,
          value_parser = value_parser!(u32).range(1..).map(|n| n as usize))]
    pub db_pool_size: usize,
    /// How long a request waits for a free connection before answering 503.
    #[arg(long, env = "LEDGER_DB_WAIT_TIMEOUT_MS", default_value_t = DEFAULT_DB_WAIT_TIMEOUT_MS,
          value_parser = value_parser!(u64).range(1..))]
    pub db_wait_timeout_ms: u64,
    /// Server-side limit on any single statement.
    #[arg(long, env = "LEDGER_DB_STATEMENT_TIMEOUT_MS", default_value_t = DEFAULT_DB_STATEMENT_TIMEOUT_MS,
          value_parser = value_parser!(u64).range(1..))]
    pub db_statement_timeout_ms: u64,
    /// TLS to the database, as libpq's `sslmode`: disable, prefer, require, verify-ca or
    /// verify-full [default: the URL's `sslmode`, else prefer].
    #[arg(long, env = "LEDGER_DB_SSL_MODE", value_name = "MODE")]
    pub db_ssl_mode: Option<eventstore::SslMode>,
    /// The certificate authorities that verify the database's certificate: a PEM file, or
    /// `system` for the system's roots (libpq's `sslrootcert`) [default: the URL's].
    #[arg(long, env = "LEDGER_DB_SSL_ROOT_CERT", value_name = "PATH")]
    pub db_ssl_root_cert: Option<eventstore::RootCerts>,
    /// A client certificate (PEM) for a server that asks for one (libpq's `sslcert`).
    #[arg(long, env = "LEDGER_DB_SSL_CERT", value_name = "PATH")]
    pub db_ssl_cert: Option<std::path::PathBuf>,
    /// The client certificate's unencrypted PKCS#8 PEM key (libpq's `sslkey`).
    #[arg(long, env = "LEDGER_DB_SSL_KEY", value_name = "PATH")]
    pub db_ssl_key: Option<std::path::PathBuf>,
}

impl DatabaseArgs {
    /// The connection string with the `--db-ssl-*` settings folded in, each in place of
    /// the URL's own parameter.
    pub fn connection_url(&self) -> String {
        let overrides = eventstore::TlsParameters {
            mode: self.db_ssl_mode,
            root_certs: self.db_ssl_root_cert.clone(),
            client_cert: self.db_ssl_cert.clone(),
            client_key: self.db_ssl_key.clone(),
        };
        eventstore::with_tls_parameters(&self.database_url, &overrides)
    }

    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            database_url: self.connection_url(),
            max_size: self.db_pool_size,
            wait_timeout: Duration::from_millis(self.db_wait_timeout_ms),
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms),
        }
    }

    /// The pool, or a start-up error naming the setting.
    pub fn pool(&self) -> anyhow::Result<eventstore::Pool> {
        eventstore::connect(&self.pool_settings()).context(Self::SETTINGS)
    }

    /// What a dedicated connection is opened with, or a start-up error naming the setting.
    pub fn connector(&self) -> anyhow::Result<eventstore::Connector> {
        eventstore::Connector::new(&self.connection_url()).context(Self::SETTINGS)
    }

    /// Where the database settings come from, for the errors that refuse them.
    const SETTINGS: &str = "DATABASE_URL / --database-url (with LEDGER_DB_SSL_* / --db-ssl-*)";
}

/// `ledger serve`.
#[derive(Parser, Clone, Debug)]
#[command(name = "serve")]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address the HTTP API listens on (port 0 picks a free one).
    #[arg(long, env = "LEDGER_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: SocketAddr,
    /// Which parts of the ledger this process runs [default: api,relay,projector, and
    /// dispatcher when a delivery channel is configured].
    #[arg(long, env = "LEDGER_ROLES", value_enum, value_delimiter = ',')]
    pub roles: Option<Vec<Role>>,
    #[command(flatten)]
    pub bus: BusArgs,
    #[command(flatten)]
    pub relay: RelayArgs,
    #[command(flatten)]
    pub projector: ProjectorArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub payments: PaymentArgs,
    /// Skip applying migrations at start-up (when `ledger migrate` runs as a separate step).
    #[arg(long, env = "LEDGER_SKIP_MIGRATIONS", value_name = "BOOL")]
    #[arg(action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub skip_migrations: bool,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub group_commit: GroupCommitArgs,
    #[command(flatten)]
    pub idempotency: IdempotencyArgs,
    /// How long in-flight requests may take to finish after a shutdown signal.
    #[arg(long, env = "LEDGER_SHUTDOWN_GRACE_MS", default_value_t = DEFAULT_SHUTDOWN_GRACE_MS)]
    pub shutdown_grace_ms: u64,
}

impl ServeArgs {
    /// The settings these arguments describe, or the first one that cannot work.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = Settings::new(self.database.database_url.clone(), None);
        settings.database = self.database.pool_settings();
        settings.http_addr = self.http_addr;
        settings.channels = self.delivery.channels()?;
        settings.delivery = self.delivery.settings();
        settings.payments = self.payments.settings()?;
        settings.roles = match &self.roles {
            Some(roles) => roles.clone(),
            None => Role::ALL
                .into_iter()
                .chain(settings.channels.any().then_some(Role::Dispatcher))
                .chain(settings.payments.is_some().then_some(Role::Payments))
                .collect(),
        };
        if settings.runs(Role::Payments) && settings.payments.is_none() {
            anyhow::bail!(
                "LEDGER_ROLES (--roles) names payments, but no payment provider is configured:                  set LEDGER_PAYMENT_PROVIDER_URL and LEDGER_PAYMENT_PROVIDER_KEY"
            );
        }
        if settings.runs(Role::Dispatcher) && !settings.channels.any() {
            anyhow::bail!(
                "LEDGER_ROLES (--roles) names dispatcher, but no channel is configured: set \
                 LEDGER_SMTP_URL and LEDGER_MAIL_FROM, or LEDGER_WEBHOOK_URL and LEDGER_WEBHOOK_SECRET"
            );
        }
        settings.bus = self.bus.settings()?;
        settings.relay.batch_size = self.relay.relay_batch_size;
        settings.relay.poll_interval = Duration::from_millis(self.relay.relay_poll_ms);
        settings.relay.max_in_flight = self.relay.relay_max_in_flight;
        settings.catch_up.interval = Duration::from_millis(self.projector.catch_up_interval_ms);
        settings.catch_up.grace = Duration::from_millis(self.projector.catch_up_grace_ms);
        settings.consumer.batch_max = self.projector.consumer_batch_max;
        settings.consumer.batch_wait = Duration::from_micros(self.projector.consumer_batch_wait_us);
        settings.skip_migrations = self.skip_migrations;
        settings.access = self.access.settings()?;
        settings.group_commit = self.group_commit.settings();
        settings.idempotency = self.idempotency.settings();
        settings.shutdown_grace = Duration::from_millis(self.shutdown_grace_ms);
        Ok(settings)
    }
}

#[derive(Args, Clone, Debug)]
pub struct GroupCommitArgs {
    /// Run every command in a transaction of its own instead of sharing transactions.
    #[arg(long, env = "LEDGER_NO_GROUP_COMMIT", value_name = "BOOL")]
    #[arg(action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub no_group_commit: bool,
    /// Most commands sharing one transaction.
    #[arg(long, env = "LEDGER_GROUP_COMMIT_MAX_BATCH", default_value_t = DEFAULT_GROUP_COMMIT_MAX_BATCH,
          value_parser = value_parser!(u32).range(1..).map(|n| n as usize))]
    pub group_commit_max_batch: usize,
    /// How long a writer waits for more commands once it has one, in microseconds.
    #[arg(long, env = "LEDGER_GROUP_COMMIT_LINGER_US", default_value_t = DEFAULT_GROUP_COMMIT_LINGER_US)]
    pub group_commit_linger_us: u64,
    /// Writer tasks (each uses one connection while it writes).
    #[arg(long, env = "LEDGER_GROUP_COMMIT_WRITERS", default_value_t = DEFAULT_GROUP_COMMIT_WRITERS,
          value_parser = value_parser!(u32).range(1..).map(|n| n as usize))]
    pub group_commit_writers: usize,
}

impl GroupCommitArgs {
    pub fn settings(&self) -> Option<GroupCommitSettings> {
        (!self.no_group_commit).then(|| GroupCommitSettings {
            max_batch: self.group_commit_max_batch,
            linger: Duration::from_micros(self.group_commit_linger_us),
            writers: self.group_commit_writers,
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
    #[arg(long, env = "LEDGER_INSECURE_NO_AUTH", value_name = "BOOL")]
    #[arg(action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub insecure_no_auth: bool,
    /// Requests one token may have in flight; more are answered 429 with Retry-After.
    #[arg(long, env = "LEDGER_MAX_IN_FLIGHT_PER_TOKEN", default_value_t = DEFAULT_MAX_IN_FLIGHT_PER_TOKEN,
          value_parser = value_parser!(u32).range(1..).map(|n| n as usize))]
    pub max_in_flight_per_token: usize,
    /// Longest time a request may take before it is answered 503 `request_timeout`.
    #[arg(long, env = "LEDGER_REQUEST_TIMEOUT_MS", default_value_t = DEFAULT_REQUEST_TIMEOUT_MS,
          value_parser = value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,
}

impl AccessArgs {
    /// Refuses to start with neither tokens nor `--insecure-no-auth`, so a forgotten
    /// setting never serves an open ledger.
    pub fn settings(&self) -> anyhow::Result<Access> {
        let configured = self.api_tokens.as_deref().unwrap_or_default();
        let tokens: Tokens = configured
            .parse()
            .map_err(|error| anyhow::anyhow!("LEDGER_API_TOKENS / --api-tokens: {error}"))?;
        let tokens = match (tokens.is_empty(), self.insecure_no_auth) {
            (false, false) => Some(tokens),
            (true, true) => None,
            (false, true) => anyhow::bail!(
                "both LEDGER_API_TOKENS (--api-tokens) and LEDGER_INSECURE_NO_AUTH \
                 (--insecure-no-auth) are set; choose one"
            ),
            (true, false) => anyhow::bail!(
                "no API tokens configured: set LEDGER_API_TOKENS=\"write:…,read:…,admin:…\" \
                 (or LEDGER_INSECURE_NO_AUTH=1 / --insecure-no-auth to serve without \
                 authentication, locally only)"
            ),
        };
        Ok(Access {
            tokens,
            max_in_flight_per_token: self.max_in_flight_per_token,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Args, Clone, Debug)]
pub struct RelayArgs {
    /// Events published per batch (one checkpoint write per batch).
    #[arg(long, env = "LEDGER_RELAY_BATCH_SIZE", default_value_t = DEFAULT_RELAY_BATCH_SIZE,
          value_parser = value_parser!(i64).range(1..))]
    pub relay_batch_size: i64,
    /// Longest wait between looks at the store when no append notification arrives.
    #[arg(long, env = "LEDGER_RELAY_POLL_MS", default_value_t = DEFAULT_RELAY_POLL_MS,
          value_parser = value_parser!(u64).range(1..))]
    pub relay_poll_ms: u64,
    /// Batches travelling to the broker at once, at most (1: each waits for the last); a
    /// relay that dies republishes up to this many.
    #[arg(long, env = "LEDGER_RELAY_MAX_IN_FLIGHT", default_value_t = bus::relay::DEFAULT_MAX_IN_FLIGHT,
          value_parser = value_parser!(u32).range(1..=64).map(|n| n as usize))]
    pub relay_max_in_flight: usize,
}

#[derive(Args, Clone, Debug)]
pub struct ProjectorArgs {
    /// How often each projection looks in the store for events the bus did not deliver.
    #[arg(long, env = "LEDGER_CATCH_UP_INTERVAL_MS", default_value_t = DEFAULT_CATCH_UP_INTERVAL_MS,
          value_parser = value_parser!(u64).range(1..))]
    pub catch_up_interval_ms: u64,
    /// How old such an event must be before the store supplies it (the bus's usual delay,
    /// with room to spare).
    #[arg(long, env = "LEDGER_CATCH_UP_GRACE_MS", default_value_t = DEFAULT_CATCH_UP_GRACE_MS)]
    pub catch_up_grace_ms: u64,
    /// Most messages a projection applies in one transaction.
    #[arg(long, env = "LEDGER_CONSUMER_BATCH_MAX", default_value_t = DEFAULT_CONSUMER_BATCH_MAX,
          value_parser = value_parser!(u32).range(1..).map(|n| n as usize))]
    pub consumer_batch_max: usize,
    /// How long a consumer waits for more messages once it has one, in microseconds (0:
    /// it takes what has arrived; a batch then grows with the load by itself).
    #[arg(long, env = "LEDGER_CONSUMER_BATCH_WAIT_US", default_value_t = DEFAULT_CONSUMER_BATCH_WAIT_US)]
    pub consumer_batch_wait_us: u64,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Role, ServeArgs};

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        ServeArgs::try_parse_from(
            ["serve", "--database-url", "postgres://x@y/z"].iter().chain(args),
        )
    }

    #[test]
    fn a_ledger_serves_every_role_unless_told_otherwise() -> Result<(), clap::Error> {
        // Set in the environment, the variable would decide; the default is what is tested.
        if std::env::var_os("LEDGER_ROLES").is_some() {
            return Ok(());
        }
        if std::env::var_os("LEDGER_API_TOKENS").is_some() {
            return Ok(());
        }
        let roles = |args: &[&str]| {
            let args: Vec<&str> = args.iter().copied().chain(["--insecure-no-auth"]).collect();
            parse(&args).map(|a| a.settings().map(|s| s.roles))
        };
        assert_eq!(roles(&[])?.ok(), Some(vec![Role::Api, Role::Relay, Role::Projector]));
        assert_eq!(roles(&["--roles", "api"])?.ok(), Some(vec![Role::Api]));
        let with_mail = ["--smtp-url", "smtp://127.0.0.1:2525", "--mail-from", "o@shop.example"];
        assert_eq!(
            roles(&with_mail)?.ok(),
            Some(vec![Role::Api, Role::Relay, Role::Projector, Role::Dispatcher])
        );
        Ok(())
    }

    #[test]
    fn booleans_take_the_usual_spellings() -> Result<(), clap::Error> {
        for (given, meant) in [("1", true), ("yes", true), ("on", true), ("true", true)]
            .into_iter()
            .chain([("0", false), ("no", false), ("off", false), ("false", false)])
        {
            let flag = format!("--insecure-no-auth={given}");
            assert_eq!(parse(&[&flag])?.access.insecure_no_auth, meant, "{given}");
        }
        assert!(parse(&["--insecure-no-auth"])?.access.insecure_no_auth);
        assert!(parse(&["--insecure-no-auth=maybe"]).is_err());
        Ok(())
    }

    #[test]
    fn a_payment_provider_that_cannot_work_is_refused_naming_the_setting() -> Result<(), clap::Error>
    {
        let refusal = |args: &[&str]| {
            let args: Vec<&str> = args.iter().copied().chain(["--insecure-no-auth"]).collect();
            parse(&args).map(|a| a.settings().err().map(|e| e.to_string()))
        };
        let bad_url =
            refusal(&["--payment-provider-url", "not a url", "--payment-provider-key", "k"])?;
        assert!(bad_url.is_some_and(|e| e.contains("LEDGER_PAYMENT_PROVIDER_URL")));
        let no_key = refusal(&["--payment-provider-url", "https://api.stripe.com"])?;
        assert!(no_key.is_some_and(|e| e.contains("LEDGER_PAYMENT_PROVIDER_KEY")));
        let short_lease = refusal(&[
            "--payment-provider-url",
            "https://api.stripe.com",
            "--payment-provider-key",
            "sk_test_x",
            "--payment-lease-ms",
            "1000",
        ])?;
        assert!(short_lease.is_some_and(|e| e.contains("LEDGER_PAYMENT_LEASE_MS")));
        if std::env::var_os("LEDGER_PAYMENT_PROVIDER_URL").is_none() {
            let no_provider = refusal(&["--roles", "api,payments"])?;
            assert!(no_provider.is_some_and(|e| e.contains("LEDGER_PAYMENT_PROVIDER_URL")));
        }
        Ok(())
    }

    #[test]
    fn a_configured_provider_turns_the_payment_service_on() -> Result<(), clap::Error> {
        if std::env::var_os("LEDGER_ROLES").is_some() {
            return Ok(());
        }
        let args = [
            "--insecure-no-auth",
            "--payment-provider-url",
            "https://api.stripe.com",
            "--payment-provider-key",
            "sk_test_x",
        ];
        let roles = parse(&args)?.settings().ok().map(|s| s.roles);
        assert_eq!(roles, Some(vec![Role::Api, Role::Relay, Role::Projector, Role::Payments]));
        Ok(())
    }

    #[test]
    fn a_pool_of_no_connections_is_refused_naming_the_setting() {
        let error = parse(&["--db-pool-size", "0"]).map(|_| ()).err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("--db-pool-size")));
    }
}
