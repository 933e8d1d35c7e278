//! The relay leader's dedicated connection: it holds the leadership (a session-level
//! advisory lock), listens for append hints, reads batches and writes checkpoints. A
//! leader that lost this connection has lost the lock with it, so it can neither read nor
//! checkpoint as if it still led.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use eventstore::position::{CommitPosition, CommittedReads};
use eventstore::StoreError;
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

const TRY_LEAD: &str = "SELECT pg_try_advisory_lock(hashtext('ledger-relay:' || $1))";
const CREATE_CHECKPOINT: &str =
    "INSERT INTO relay_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING";
const LOAD_CHECKPOINT: &str =
    "SELECT tx_id::text::bigint, global_position FROM relay_checkpoints WHERE name = $1";
/// Only ever forward, even if a deposed leader writes late.
const SAVE_CHECKPOINT: &str = "
    UPDATE relay_checkpoints
       SET tx_id = $2::bigint::text::xid8, global_position = $3,
           published_events = published_events + $4,
           last_published_at = now(), updated_at = now()
     WHERE name = $1 AND (tx_id, global_position) < ($2::bigint::text::xid8, $3)";

pub(crate) struct Leader {
    pub(crate) client: tokio_postgres::Client,
    /// The batch reads, prepared once for the whole leadership.
    pub(crate) reads: CommittedReads,
    save_checkpoint: tokio_postgres::Statement,
    /// Woken by an append notification (or when the connection ends).
    pub(crate) appended: Arc<Notify>,
    closed: Arc<AtomicBool>,
    _connection: AbortOnDrop,
}

/// The connection's task, aborted when dropped: closing the connection releases the lock
/// at the server at once.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Leader {
    /// Connects and tries to take the leadership of the relay called `name`; `None` when
    /// another relay holds it.
    pub(crate) async fn acquire(
        database_url: &str,
        name: &str,
    ) -> Result<Option<Self>, StoreError> {
        let connector = eventstore::Connector::new(database_url)
            .map_err(|error| StoreError::Settings(Box::new(error)))?;
        let (client, mut connection) = connector.connect().await?;
        let appended = Arc::new(Notify::new());
        let closed = Arc::new(AtomicBool::new(false));
        let (wake, gone) = (appended.clone(), closed.clone());
        let connection = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "relay leader connection failed");
                        break;
                    }
                }
            }
            gone.store(true, Ordering::SeqCst);
            wake.notify_one();
        });
        // Closed on every early return below, as when the leader is dropped.
        let connection = AbortOnDrop(connection);
        let locked: bool = client.query_one(TRY_LEAD, &[&name]).await?.try_get(0)?;
        if !locked {
            return Ok(None);
        }
        // A checkpoint a database crash loses only makes the relay publish those events
        // again (consumers drop the duplicates): no need to wait for the disk per batch.
        client.batch_execute("LISTEN ledger_events_appended; SET synchronous_commit = off").await?;
        client.batch_execute(eventstore::position::ORDERED_READS).await?;
        let (reads, save_checkpoint) =
            futures_util::future::try_join(CommittedReads::prepare(&client), async {
                Ok(client.prepare(SAVE_CHECKPOINT).await?)
            })
            .await?;
        Ok(Some(Self { client, reads, save_checkpoint, appended, closed, _connection: connection }))
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst) || self.client.is_closed()
    }

    pub(crate) async fn checkpoint(&self, name: &str) -> Result<CommitPosition, StoreError> {
        self.client.execute(CREATE_CHECKPOINT, &[&name]).await?;
        let row = self.client.query_one(LOAD_CHECKPOINT, &[&name]).await?;
        Ok(CommitPosition { tx_id: row.try_get(0)?, global_position: row.try_get(1)? })
    }

    pub(crate) async fn save_checkpoint(
        &self,
        name: &str,
        to: CommitPosition,
        published: usize,
    ) -> Result<(), StoreError> {
        let published = i64::try_from(published).unwrap_or(i64::MAX);
        self.client
            .execute(&self.save_checkpoint, &[&name, &to.tx_id, &to.global_position, &published])
            .await?;
        Ok(())
    }
}
