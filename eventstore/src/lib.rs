//! The PostgreSQL event store: the ledger's source of truth.
//!
//! - [`EventStore`] loads streams (whole or up to a [`Cut`]) and opens a [`UnitOfWork`]:
//!   one transaction in which a command claims its idempotency key, reads its stream,
//!   appends with an expected version and records its response, all or nothing.
//! - [`schema`] maps domain events to and from their stored JSON, upcasting old versions.
//! - [`Relay`] publishes committed events to Kafka (the events table is the outbox), in the
//!   gap-safe order of [`position`], one active relay at a time.
//! - [`migrate`] applies the SQL migrations in `migrations/` (refinery), serialised by an
//!   advisory lock so several starting processes do not race.
//!
//! Optimistic concurrency is the `(stream_id, stream_version)` unique constraint: of two
//! writers that read version N, exactly one commits N + 1; the other gets
//! [`AppendError::Conflict`], never a lost or duplicated event.

mod batch;
pub mod envelope;
mod error;
mod idempotency;
mod kafka;
mod migrate;
mod pool;
pub mod position;
mod recorded;
mod relay;
mod relay_status;
pub mod schema;
mod settle;
pub mod snapshot;
mod store;
mod transaction;
mod unit_of_work;

pub use batch::{BatchEvent, BatchWrite};
pub use error::{AppendError, StoreError};
pub use idempotency::Claim;
pub use kafka::{KafkaSettings, DEAD_LETTER_SUFFIX, ORDERS_TOPIC};
pub use migrate::{migrate, migrations_fingerprint, pending_migrations};
pub use pool::{connect, PoolSettings};
pub use recorded::{AppendedEvent, Cut, Metadata, NewEvent, RecordedEvent};
pub use relay::{producer_config, Relay, RelaySettings};
pub use relay_status::{
    relay_report, BrokerHealth, RelayReport, RelayRole, RelayStatus, RelayStatusHandle,
};
pub use settle::{oldest_running_writer, settle, SETTLE_LIMIT};
pub use store::{load_stream, EventStore};
pub use unit_of_work::UnitOfWork;

/// Re-exported so callers can name the pool without depending on deadpool themselves.
pub use deadpool_postgres::Pool;
