//! Bulk replay: how a rebuild folds the whole history into a new generation fast.
//!
//! Applying history a batch at a time through [`Projection::apply`] costs an index lookup,
//! an update and several index insertions per event, and runs at a few thousand events a
//! second. A replay instead folds the events in memory, in the gap-safe order, and writes
//! each row once, when no later event can change it, with `COPY … FROM STDIN BINARY` into
//! tables that have no indexes yet; the rebuild creates the indexes afterwards, in one sort
//! each. The rows must be exactly those `apply` would have left, which is why both paths
//! share their per-event logic and the rebuild specs compare a rebuilt generation with the
//! live one row for row.
//!
//! [`Projection::apply`]: crate::Projection::apply

use std::collections::HashMap;
use std::future::Future;

use tokio_postgres::Client;

use crate::error::ApplyError;
use crate::event::ProjectedEvent;

/// A projection's in-memory fold of history, written out by `COPY`. Taking rows out and
/// writing them are separate so that the rebuild writes one batch while it folds the next.
pub trait Replay: Send + 'static {
    /// Rows taken out of the fold, to be written.
    type Rows: Send + 'static;

    /// Takes the next event of the history: in the gap-safe commit order, each once, and
    /// in version order within its stream.
    fn feed(&mut self, event: &ProjectedEvent) -> Result<(), ApplyError>;

    /// Forgets `order`, whose rows are to be written as they stand at the next take: the
    /// rebuild evicts orders that have been quiet for a while (its later events, if any,
    /// are applied through `apply` on top of those rows).
    fn evict(&mut self, order: uuid::Uuid);

    /// Takes out the rows no later event can change (all that are left, when `end`), and
    /// those of the orders evicted.
    fn take(&mut self, end: bool) -> Self::Rows;

    /// Writes rows taken by [`Replay::take`] into the tables of `schema`.
    fn write(
        client: &Client,
        schema: &str,
        rows: Self::Rows,
    ) -> impl Future<Output = Result<(), ApplyError>> + Send;
}

/// Per-order state held by a replay: one lookup or more per event, a few hundred thousand
/// entries per million events. Keys are order ids from the store, so a fast hasher is
/// safe here (the standard one is built to resist chosen keys, at twice the cost).
pub(crate) type ByOrder<V> = HashMap<uuid::Uuid, V, foldhash::fast::RandomState>;
