//! A pooled connection inside an explicit transaction, for the writers (a unit of work, a
//! batch). Dropped without a commit or rollback — a cancelled request, an early return —
//! it cannot roll back asynchronously, so it closes its connection instead: the server
//! rolls the transaction back and the pool never hands out a connection mid-transaction.

use deadpool_postgres::Object;

use crate::error::StoreError;

pub(crate) struct OpenTransaction {
    /// `None` once committed or rolled back.
    client: Option<Object>,
}

impl OpenTransaction {
    /// Begins with `statements` (which start with `BEGIN`), in one round trip.
    pub(crate) async fn begin_with(client: Object, statements: &str) -> Result<Self, StoreError> {
        client.batch_execute(statements).await?;
        Ok(Self { client: Some(client) })
    }

    pub(crate) fn client(&self) -> Result<&Object, StoreError> {
        self.client.as_ref().ok_or(StoreError::Misuse("the transaction has already ended"))
    }

    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        self.finish("COMMIT").await
    }

    pub(crate) async fn rollback(mut self) -> Result<(), StoreError> {
        self.finish("ROLLBACK").await
    }

    async fn finish(&mut self, statement: &str) -> Result<(), StoreError> {
        let client =
            self.client.take().ok_or(StoreError::Misuse("the transaction has already ended"))?;
        match client.batch_execute(statement).await {
            Ok(()) => Ok(()),
            Err(error) => {
                // The connection's state is unknown: never hand it to another request.
                drop(Object::take(client));
                Err(error.into())
            }
        }
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}
