//! The seam between the worker and a read model.

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

/// A read model. `apply` runs inside the transaction that also records the event as
/// applied, so its effect happens exactly once.
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the consumer group, the dedupe key, the admin name.
    fn name(&self) -> &'static str;

    fn apply(
        &self,
        transaction: &Transaction<'_>,
        event: &ProjectedEvent,
    ) -> impl Future<Output = Result<(), ApplyError>> + Send;
}
