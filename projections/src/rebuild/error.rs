//! Why a rebuild did not finish.

use eventstore::StoreError;

use crate::error::ApplyError;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("a rebuild of {0} is already running")]
    AlreadyRunning(String),
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
}
