//! Why a batch could not be applied: the infrastructure (worth waiting out) or the
//! message (a dead letter, after retries).

use eventstore::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("event store error")]
    Store(#[from] StoreError),
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
            Self::Database(error) => StoreError::is_transient_database_error(error),
            Self::Store(error) => error.is_transient(),
            Self::Undecodable(_) | Self::Inconsistent(_) => false,
        }
    }
}
