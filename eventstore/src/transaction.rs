//! A pooled connection inside an explicit transaction, for the writers (a unit of work, a
//! batch). Dropped without a commit or rollback — a cancelled request, an early return —
//! it cannot roll back asynchronously, so it closes its connection instead: the server
//! rolls the transaction back and the pool never hands out a connection mid-transaction.

use deadpool_postgres::Object;

use crate::error::StoreError;

pub(crate) struct OpenTransaction {
    /// `None` once committed or rolled back.
    client: Option<Object>,
    /// Committed by [`OpenTransaction::commit_pipelined`]: the connection is idle again.
    committed: std::sync::atomic::AtomicBool,
}

impl OpenTransaction {
    /// A transaction whose `BEGIN` the caller sends first, pipelined with what follows it.
    pub(crate) fn opening(client: Object) -> Self {
        Self { client: Some(client), committed: Default::default() }
    }

    pub(crate) fn client(&self) -> Result<&Object, StoreError> {
        self.client.as_ref().ok_or(StoreError::Misuse("the transaction has already ended"))
    }

    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        self.finish("COMMIT").await
    }

    /// Commits, sent behind what the caller sent before it without waiting for its
    /// answers. The connection goes back to the pool only once the `COMMIT` succeeded (this
    /// borrows the transaction; the pool gets its connection when the transaction drops,
    /// and a failed one is closed then).
    pub(crate) async fn commit_pipelined(&self) -> Result<(), StoreError> {
        self.client()?.batch_execute("COMMIT").await?;
        self.committed.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
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
            if !*self.committed.get_mut() {
                drop(Object::take(client));
            }
        }
    }
}
