//! The seam between the consumer of the orders channel and a read model.

use std::future::Future;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use uuid::Uuid;

/// One event as a projection sees it: decoded to the current domain shape.
#[derive(Clone, Debug)]
pub struct ProjectedEvent {
    pub event_id: Uuid,
    pub stream_id: Uuid,
    pub stream_version: u32,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub event: domain::Event,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("store: {0}")]
    Store(#[from] eventstore::StoreError),
    #[error("undecodable message: {0}")]
    Undecodable(String),
    #[error("{0}")]
    Inconsistent(String),
}

impl ApplyError {
    /// A failure of the infrastructure (connection lost, database restarting, pool
    /// exhausted) rather than of the message: worth waiting out, never a dead letter.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(error) => eventstore::StoreError::is_transient_database_error(error),
            Self::Store(error) => error.is_transient(),
            Self::Undecodable(_) | Self::Inconsistent(_) => false,
        }
    }
}

/// A read model. `apply` runs inside the transaction that also records the events as
/// applied, so their effect happens exactly once. It receives new events only (no
/// duplicates), in stream order per order, and should write them with a few set-based
/// statements rather than a few statements per event.
pub trait Projection: Send + Sync + 'static {
    /// The in-memory fold a rebuild replays history through.
    type Replay: crate::replay::Replay;

    /// Stable name: the consumer group, the dedupe key, the admin name.
    fn name(&self) -> &'static str;

    /// A fold of no events yet, for a rebuild's bulk replay: it must leave exactly the
    /// rows `apply` would leave for the same events.
    fn replay(&self) -> Self::Replay;

    fn apply(
        &self,
        transaction: &Transaction<'_>,
        events: &[ProjectedEvent],
    ) -> impl Future<Output = Result<(), ApplyError>> + Send;

    /// The read model's tables (what a rebuild creates anew and swaps in), referenced
    /// tables first.
    fn tables(&self) -> &'static [&'static str];
}

/// Executes `sql` through the connection's statement cache: one round trip instead of two
/// (prepare, then execute) for statements run once per event.
pub async fn execute(
    transaction: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = transaction.prepare_cached(sql).await?;
    transaction.execute(&statement, params).await
}
