//! Store errors, split by what the caller can do about them: `Unavailable` is worth a
//! retry later (503), `Conflict` is a lost race (409), anything else is a bug or a broken
//! database (500, logged with its cause).

use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had in time, the server went away, or a statement hit the
    /// statement timeout.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error")]
    Database(#[source] tokio_postgres::Error),
    #[error("stored event {event_id} cannot be decoded")]
    Decode {
        event_id: Uuid,
        #[source]
        source: crate::schema::SchemaError,
    },
}

impl StoreError {
    /// Whether a database error is transient: the connection or the server, not the
    /// statement, failed (`code() == None` means the error did not come from the server).
    pub fn is_transient(error: &tokio_postgres::Error) -> bool {
        use tokio_postgres::error::SqlState;
        error.is_closed()
            || matches!(
                error.code(),
                None | Some(&SqlState::QUERY_CANCELED)
                    | Some(&SqlState::ADMIN_SHUTDOWN)
                    | Some(&SqlState::CANNOT_CONNECT_NOW)
                    | Some(&SqlState::TOO_MANY_CONNECTIONS)
            )
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        if Self::is_transient(&error) {
            Self::Unavailable(error.to_string())
        } else {
            Self::Database(error)
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to the stream after it was read.
    #[error("stream {stream_id} is no longer at version {expected_version}")]
    Conflict { stream_id: Uuid, expected_version: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}
