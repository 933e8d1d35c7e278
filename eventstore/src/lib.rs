//! The PostgreSQL event store: the ledger's source of truth.
//!
//! - [`EventStore`] loads streams (whole or up to a [`Cut`]) and opens a [`UnitOfWork`]:
//!   one transaction in which commands claim their idempotency keys, read their streams,
//!   append at the versions they read and record their outcomes, all or nothing.
//! - [`schema`] maps domain events to and from their stored JSON, upcasting old versions.
//! - [`position`] reads the whole store in the gap-safe commit order, for the relay and
//!   rebuilds; [`settle`] makes a point-in-time cut final before it is read.
//! - [`snapshot`]: a stream's folded state, so a long stream loads as a snapshot and a tail.
//! - [`Connector`]: how every connection reaches the database, over the TLS that libpq's
//!   `sslmode` and friends in the connection string ask for ([`tls`]).
//!
//! Optimistic concurrency is the `(stream_id, stream_version)` unique constraint: of two
//! writers that read version N, exactly one commits N + 1; the other gets
//! [`AppendError::Conflict`], never a lost or duplicated event.

mod connection;
mod error;
pub mod idempotency;
mod pool;
pub mod position;
mod recorded;
mod rows;
pub mod schema;
mod settle;
pub mod snapshot;
mod store;
pub mod tls;
mod transaction;
mod unit_of_work;

pub use connection::{with_tls_parameters, Connection, ConnectionError, Connector};
pub use error::{AppendError, StoreError, Unavailable};
pub use idempotency::{Claim, KeyClaim};
pub use pool::{acquire, acquire_within, connect, wait_timeout, PoolSettings};
pub use recorded::{Cut, Metadata, RecordedEvent};
pub use rows::{stream_lock_key, stream_version, to_stored_version};
pub use schema::NewEvent;
pub use settle::{append_frontier, settle, AppendFrontier, SETTLE_LIMIT};
pub use store::{load_stream, EventStore};
pub use tls::{RootCerts, SslMode, TlsParameters};
pub use unit_of_work::{StreamEvent, UnitOfWork};

/// Re-exported so callers can name the pool without depending on deadpool themselves.
pub use deadpool_postgres::Pool;
