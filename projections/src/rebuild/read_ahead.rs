//! The bulk replay's reader: the store in the gap-safe order, decoded a couple of batches
//! ahead of the fold, on a connection and a task of its own.

use deadpool_postgres::Pool;
use eventstore::position::{replay_committed_after, CommitPosition, ReplayedEvent};
use eventstore::StoreError;
use futures_util::TryStreamExt;
use tokio::sync::mpsc;

use super::error::RebuildError;
use super::target::{inside, Target};
use crate::event::ProjectedEvent;

/// One batch of the store as the replay reads it.
pub(crate) struct ReadBatch {
    /// The events inside the target, decoded.
    pub(crate) events: Vec<ProjectedEvent>,
    /// Events read, inside the target or not.
    pub(crate) read: usize,
    pub(crate) last: CommitPosition,
}

impl ReadBatch {
    /// An empty batch; it is sent only once it has read an event, which sets `last`.
    fn with_capacity(capacity: usize) -> Self {
        Self { events: Vec::with_capacity(capacity), read: 0, last: CommitPosition::default() }
    }
}

/// Events per statement of the bulk read: enough that starting a statement costs nothing,
/// few enough that no statement holds its snapshot (and vacuum's horizon) for long.
pub const READ_CHUNK: i64 = 100_000;

/// Reads the store in the gap-safe order and decodes it, a couple of batches ahead of the
/// fold, until a batch comes back short: the end of what is committed. Stops when the
/// receiver is dropped.
pub(crate) fn read_ahead(
    pool: Pool,
    batch_size: i64,
    target: Target,
) -> (mpsc::Receiver<Result<ReadBatch, RebuildError>>, tokio::task::JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(2);
    let task = tokio::spawn(async move {
        if let Err(error) = read_all(&pool, batch_size, target, &sender).await {
            let _ = sender.send(Err(error)).await;
        }
    });
    (receiver, task)
}

async fn read_all(
    pool: &Pool,
    batch_size: i64,
    target: Target,
    sender: &mpsc::Sender<Result<ReadBatch, RebuildError>>,
) -> Result<(), RebuildError> {
    let client = pool.get().await.map_err(StoreError::from)?;
    let batch_size = usize::try_from(batch_size).unwrap_or(1);
    let mut last = CommitPosition::default();
    let mut batch = ReadBatch::with_capacity(batch_size);
    loop {
        // The rows of one statement are decoded as they arrive, and handed on a batch at
        // a time.
        let rows = replay_committed_after(&**client, last, READ_CHUNK).await?;
        futures_util::pin_mut!(rows);
        let mut read: i64 = 0;
        while let Some(row) = rows.try_next().await.map_err(StoreError::from)? {
            let event = ReplayedEvent::from_row(&row)?;
            read += 1;
            last = event.commit;
            batch.read += 1;
            batch.last = last;
            if inside(target, event.commit.global_position, event.recorded_at) {
                batch.events.push(ProjectedEvent::from_replayed(&event)?);
            }
            if batch.read == batch_size {
                let full = std::mem::replace(&mut batch, ReadBatch::with_capacity(batch_size));
                if sender.send(Ok(full)).await.is_err() {
                    return Ok(());
                }
            }
        }
        if read < READ_CHUNK {
            // Short: the end of what is committed.
            if batch.read > 0 {
                let _ = sender.send(Ok(batch)).await;
            }
            return Ok(());
        }
    }
}
