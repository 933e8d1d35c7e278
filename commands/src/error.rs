//! Why a command was not accepted, kept apart by what the caller can do: fix the request
//! or the order's state (a rule, a version, a key), retry later (contention, an
//! unavailable store), or nothing (a bug or corrupt data, logged with its cause).

use domain::{DomainError, Rule};
use eventstore::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("the order does not exist")]
    NotFound,
    #[error("rule violated: {0}")]
    Rejected(Rule),
    /// `If-Match` named another version, or another writer got there first.
    #[error("the order is not at version {expected}")]
    VersionConflict { expected: u32, actual: Option<u32> },
    #[error("the idempotency key was used with another request")]
    IdempotencyKeyReused,
    /// The command lost the race for its order again and again.
    #[error("too much contention on this order")]
    Contention,
    /// The shared transaction this command was written in failed (its cause is logged
    /// once, by the writer); `transient` when a retry may succeed.
    #[error("the batch this command was written in failed")]
    BatchFailed { transient: bool },
    /// The command waited its store's whole wait timeout in the queue for a writer and was
    /// not written: the database is away or cannot keep up.
    #[error("no writer was free within the store's wait timeout")]
    Overloaded,
    /// The command writers stopped (the process is shutting down).
    #[error("the command writers have stopped")]
    Stopped,
    #[error("the event store is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("the event store failed")]
    Store(#[source] StoreError),
    /// An order's state could not be written as a snapshot, or an outcome as JSON.
    #[error("could not encode {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl CommandError {
    /// Worth retrying later with the same idempotency key.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Contention
                | Self::Overloaded
                | Self::Stopped
                | Self::Unavailable(_)
                | Self::BatchFailed { transient: true }
        )
    }

    /// A short stable name, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Rejected(_) => "rule_violated",
            Self::VersionConflict { .. } => "version_conflict",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::Contention
            | Self::Overloaded
            | Self::Stopped
            | Self::Unavailable(_)
            | Self::BatchFailed { transient: true } => "service_unavailable",
            Self::Store(_) | Self::Encode { .. } | Self::BatchFailed { transient: false } => {
                "internal_error"
            }
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        if error.is_transient() {
            Self::Unavailable(error)
        } else {
            Self::Store(error)
        }
    }
}

impl From<DomainError> for CommandError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::OrderNotFound => Self::NotFound,
            DomainError::RuleViolated(rule) => Self::Rejected(rule),
        }
    }
}
