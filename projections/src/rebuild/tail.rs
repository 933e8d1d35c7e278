//! Applying the store's tail to a generation: what was committed after the point a
//! replay has read to, in the gap-safe order, through the projection's own `apply` (the
//! live consumers' code). The incremental catch-up and the swap both use it.

use deadpool_postgres::Transaction;
use eventstore::position::{replay_committed_after, CommitPosition, ReplayedEvent};
use eventstore::StoreError;
use futures_util::TryStreamExt;

use super::error::RebuildError;
use super::target::{inside, Target};
use crate::apply::{apply, Durability};
use crate::event::ProjectedEvent;
use crate::projection::Projection;

/// Applies the next events of the store after `after` (up to `batch_size`, in the gap-safe
/// order, those inside `target`) to the generation `transaction` writes, through the
/// projection's own `apply`, and moves `after` past them; returns how many were read.
pub(crate) async fn apply_next<P: Projection>(
    transaction: &Transaction<'_>,
    projection: &P,
    target: Target,
    after: &mut CommitPosition,
    batch_size: i64,
) -> Result<usize, RebuildError> {
    let rows: Vec<tokio_postgres::Row> = replay_committed_after(&**transaction, *after, batch_size)
        .await?
        .try_collect()
        .await
        .map_err(StoreError::from)?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let event = ReplayedEvent::from_row(row)?;
        *after = event.commit;
        if inside(target, event.commit.global_position, event.recorded_at) {
            events.push(ProjectedEvent::from_replayed(&event)?);
        }
    }
    if !events.is_empty() {
        // The swap's transaction commits durably; a generation still being built is lost
        // with a crash anyway, and the same path serves both.
        apply(transaction, projection, &events, Durability::Durable, "").await?;
    }
    Ok(rows.len())
}
