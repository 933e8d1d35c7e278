//! What can stop the dispatcher's work (as opposed to a message's delivery failing, which
//! is a [`crate::SendError`] recorded on the delivery).

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the database")]
    Database(#[from] eventstore::StoreError),
}

impl From<tokio_postgres::Error> for DeliveryError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Database(error.into())
    }
}

impl From<deadpool_postgres::PoolError> for DeliveryError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::Database(error.into())
    }
}
