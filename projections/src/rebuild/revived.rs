//! The events of revived orders (see [`super::streams`]), applied once the bulk rows and
//! their indexes exist: read back from the store a batch of orders at a time, and applied
//! through the projection's own `apply` on top of the rows the eviction wrote.

use eventstore::Cut;
use uuid::Uuid;

use super::error::RebuildError;
use super::generation::in_generation;
use super::streams::Revived;
use super::writer::Writer;
use crate::apply::{apply, Durability};
use crate::event::ProjectedEvent;
use crate::projection::Projection;

/// Applies each revived order's versions `first..=last` to the generation in `schema`, in
/// transactions of about `batch_size` events. Orders are independent of one another in a
/// read model, so their order here does not matter; within an order, versions ascend.
pub(crate) async fn apply_revived<P: Projection>(
    writer: &mut Writer,
    projection: &P,
    schema: &str,
    revived: Vec<(Uuid, Revived)>,
    batch_size: i64,
) -> Result<u64, RebuildError> {
    let batch_size = usize::try_from(batch_size).unwrap_or(1).max(1);
    let mut applied = 0;
    let mut pending: Vec<ProjectedEvent> = Vec::new();
    let mut orders = revived.into_iter().peekable();
    while orders.peek().is_some() {
        let transaction = in_generation(writer, schema).await?;
        while pending.len() < batch_size {
            let Some((stream_id, versions)) = orders.next() else { break };
            let stored =
                eventstore::load_stream(&transaction, stream_id, Cut::Version(versions.last))
                    .await?;
            for recorded in stored.iter().filter(|e| e.stream_version >= versions.first) {
                pending.push(ProjectedEvent::from_recorded(recorded)?);
            }
        }
        let events = std::mem::take(&mut pending);
        let outcome = apply(&transaction, projection, &events, Durability::Lazy, "").await?;
        transaction.commit().await?;
        applied += outcome.applied;
    }
    Ok(applied)
}
