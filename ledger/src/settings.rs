//! Typed settings: what [`crate::Application::build`] takes. The command line
//! ([`crate::config`]) parses flags and environment variables into them; the tests build
//! them directly. Every default is a constant here, used by both.

use std::net::SocketAddr;
use std::time::Duration;

use api::Tokens;
use bus::relay::RelaySettings;
use bus::{Channels, ConsumerSettings};
use commands::GroupCommitSettings;
use delivery::DeliverySettings;
use delivery_channels::ChannelSettings;
use eventstore::PoolSettings;
use projections::CatchUpSettings;

use crate::bus_choice::{BusKind, BusSettings};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/ledger";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_POOL_SIZE: usize = 16;
pub const DEFAULT_DB_WAIT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_DB_STATEMENT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_MAX_IN_FLIGHT_PER_TOKEN: usize = 64;
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 15_000;
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
pub const DEFAULT_GROUP_COMMIT_MAX_BATCH: usize = 64;
/// No linger: a writer takes what is queued when it is free. Batches form by themselves
/// while the writers are busy, and a timed linger under a millisecond waits for the
/// runtime's next millisecond tick (docs/performance.md, 2026-12-01).
pub const DEFAULT_GROUP_COMMIT_LINGER_US: u64 = 0;
pub const DEFAULT_GROUP_COMMIT_WRITERS: usize = 4;
pub const DEFAULT_RELAY_BATCH_SIZE: i64 = 20_000;
pub const DEFAULT_RELAY_POLL_MS: u64 = 500;
pub const DEFAULT_CATCH_UP_INTERVAL_MS: u64 = 1_000;
pub const DEFAULT_CATCH_UP_GRACE_MS: u64 = 2_000;
pub const DEFAULT_CONSUMER_BATCH_MAX: usize = 5_000;
pub const DEFAULT_CONSUMER_BATCH_WAIT_US: u64 = 1_000;

/// The parts of the ledger one process can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The HTTP command and query API.
    Api,
    /// Publishes committed events to the bus (one active relay at a time across processes).
    Relay,
    /// Consumes the events into the payments and notifications read models.
    Projector,
    /// Delivers the notifications (email, webhooks); needs a channel configured.
    Dispatcher,
    /// The payment service: charges orders placed with a payment instruction, retries,
    /// compensates; needs a payment provider configured.
    Payments,
}

impl Role {
    /// Every role that needs no more than a database and a broker.
    pub const ALL: [Self; 3] = [Self::Api, Self::Relay, Self::Projector];
}

/// Who may call the API, and how much.
#[derive(Clone, Debug)]
pub struct Access {
    /// `None` serves without authentication (every caller is an admin): local use only.
    pub tokens: Option<Tokens>,
    pub max_in_flight_per_token: usize,
    pub request_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub database: PoolSettings,
    pub http_addr: SocketAddr,
    pub roles: Vec<Role>,
    /// The bus the relay publishes to and the consumers read from.
    pub bus: BusSettings,
    pub relay: RelaySettings,
    pub consumer: ConsumerSettings,
    /// The projections' catch-up from the store on what the bus did not deliver.
    pub catch_up: CatchUpSettings,
    pub delivery: DeliverySettings,
    /// Where notifications go (none: the dispatcher role cannot run).
    pub channels: ChannelSettings,
    /// The payment provider and service (none: the payments role cannot run).
    pub payments: Option<crate::payment_args::PaymentSettings>,
    /// Do not migrate at start-up (`ledger migrate` runs as a separate step).
    pub skip_migrations: bool,
    pub access: Access,
    /// `None` runs every command in a transaction of its own.
    pub group_commit: Option<GroupCommitSettings>,
    /// How long idempotency keys count, and how their records are pruned.
    pub idempotency: crate::IdempotencySettings,
    /// How long in-flight requests and background batches may take after a shutdown
    /// signal.
    pub shutdown_grace: Duration,
}

impl Settings {
    /// Every default, serving the API with `tokens`.
    pub fn new(database_url: impl Into<String>, tokens: Option<Tokens>) -> Self {
        let database = PoolSettings {
            database_url: database_url.into(),
            max_size: DEFAULT_POOL_SIZE,
            wait_timeout: Duration::from_millis(DEFAULT_DB_WAIT_TIMEOUT_MS),
            statement_timeout: Duration::from_millis(DEFAULT_DB_STATEMENT_TIMEOUT_MS),
        };
        Self {
            database,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            roles: Role::ALL.to_vec(),
            bus: BusSettings::new(BusKind::default(), &Channels::default()),
            relay: RelaySettings {
                batch_size: DEFAULT_RELAY_BATCH_SIZE,
                poll_interval: Duration::from_millis(DEFAULT_RELAY_POLL_MS),
                ..RelaySettings::default()
            },
            consumer: ConsumerSettings {
                batch_max: DEFAULT_CONSUMER_BATCH_MAX,
                batch_wait: Duration::from_micros(DEFAULT_CONSUMER_BATCH_WAIT_US),
                ..ConsumerSettings::default()
            },
            catch_up: CatchUpSettings {
                interval: Duration::from_millis(DEFAULT_CATCH_UP_INTERVAL_MS),
                grace: Duration::from_millis(DEFAULT_CATCH_UP_GRACE_MS),
                ..CatchUpSettings::default()
            },
            delivery: DeliverySettings::default(),
            channels: ChannelSettings::default(),
            payments: None,
            skip_migrations: false,
            access: Access {
                tokens,
                max_in_flight_per_token: DEFAULT_MAX_IN_FLIGHT_PER_TOKEN,
                request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            },
            group_commit: Some(GroupCommitSettings {
                max_batch: DEFAULT_GROUP_COMMIT_MAX_BATCH,
                linger: Duration::from_micros(DEFAULT_GROUP_COMMIT_LINGER_US),
                writers: DEFAULT_GROUP_COMMIT_WRITERS,
            }),
            idempotency: crate::IdempotencySettings::default(),
            shutdown_grace: Duration::from_millis(DEFAULT_SHUTDOWN_GRACE_MS),
        }
    }

    pub fn runs(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}
