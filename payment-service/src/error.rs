//! What can stop a step of the payment service (as opposed to a charge being declined,
//! which is an outcome the saga records).

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the database")]
    Database(#[from] eventstore::StoreError),
    #[error("the stored process state cannot be read or written")]
    State(#[source] serde_json::Error),
    #[error("the command was not accepted")]
    Command(#[from] commands::CommandError),
}

impl From<tokio_postgres::Error> for ServiceError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Database(error.into())
    }
}

impl From<deadpool_postgres::PoolError> for ServiceError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::Database(error.into())
    }
}

impl ServiceError {
    /// The error and its causes on one line, for logs and `last_error`.
    pub fn chain(&self) -> String {
        bus::chain(self)
    }
}
