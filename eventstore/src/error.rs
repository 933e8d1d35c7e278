//! Store errors, split by what the caller can do about them: [`StoreError::Unavailable`]
//! is worth a retry later (the API answers 503 with `Retry-After`); a lost race is
//! [`AppendError::Conflict`]; everything else is a bug, corrupt data or a broken database,
//! which retrying does not fix (500, logged with its cause).

use std::error::Error;

use uuid::Uuid;

use crate::schema::SchemaError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had in time, the server went away, is restarting or too
    /// busy, or a statement hit the statement timeout.
    #[error("the database is unavailable")]
    Unavailable(#[source] Unavailable),
    /// A statement failed for a reason a retry will not fix.
    #[error("database error")]
    Database(#[source] tokio_postgres::Error),
    #[error("stored event {event_id} cannot be decoded")]
    Decode {
        event_id: Uuid,
        #[source]
        source: SchemaError,
    },
    /// Stored data, or data about to be stored, breaks an invariant of the store (a
    /// negative stream version, an idempotency record without its outcome).
    #[error("invariant broken: {0}")]
    Invariant(String),
    /// The settings cannot work (an unparseable database URL).
    #[error("invalid database settings")]
    Settings(#[source] Box<dyn Error + Send + Sync>),
    /// The store was used in a way it does not allow: a bug in the caller.
    #[error("store misuse: {0}")]
    Misuse(&'static str),
}

/// Why the database is unavailable.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("no pooled connection")]
    Pool(#[source] deadpool_postgres::PoolError),
    #[error("the connection or the server failed")]
    Postgres(#[source] tokio_postgres::Error),
    /// A point-in-time read waited in vain for the writers inside its cut.
    #[error("{running} transaction(s) inside the requested cut are still running")]
    Unsettled { running: i64 },
}

impl StoreError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Whether a database error is transient: the connection or the server, not the
    /// statement, failed (`code() == None` means the error did not come from the server).
    pub fn is_transient_database_error(error: &tokio_postgres::Error) -> bool {
        use tokio_postgres::error::SqlState;
        error.is_closed()
            || matches!(
                error.code(),
                None | Some(&SqlState::QUERY_CANCELED)
                    | Some(&SqlState::ADMIN_SHUTDOWN)
                    | Some(&SqlState::CRASH_SHUTDOWN)
                    | Some(&SqlState::CANNOT_CONNECT_NOW)
                    | Some(&SqlState::TOO_MANY_CONNECTIONS)
                    | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                    | Some(&SqlState::T_R_DEADLOCK_DETECTED)
            )
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        if Self::is_transient_database_error(&error) {
            Self::Unavailable(Unavailable::Postgres(error))
        } else {
            Self::Database(error)
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            other => Self::Unavailable(Unavailable::Pool(other)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to the stream after it was read.
    #[error("a stream is no longer at the version it was read at")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}
