//! The seam between the things that feed a read model (the consumer of the orders
//! channel, the self-healing reader, a rebuild's replay) and the read model itself.

use std::future::Future;

use deadpool_postgres::Transaction;

use crate::error::ApplyError;
use crate::event::ProjectedEvent;

/// A read model. `apply` runs inside the transaction that also records the events as
/// applied, so their effect happens exactly once. It receives new events only (no
/// duplicates), in stream order per order, and should write them with a few set-based
/// statements rather than a few statements per event.
pub trait Projection: Send + Sync + 'static {
    /// The in-memory fold a rebuild replays history through.
    type Replay: crate::replay::Replay;

    /// Stable name: the consumer group, the dedupe key, the admin name.
    fn name(&self) -> &'static str;

    /// A fold of no events yet, for a rebuild's bulk replay: it must leave exactly the
    /// rows `apply` would leave for the same events.
    fn replay(&self) -> Self::Replay;

    fn apply(
        &self,
        transaction: &Transaction<'_>,
        events: &[ProjectedEvent],
    ) -> impl Future<Output = Result<(), ApplyError>> + Send;

    /// The read model's tables (what a rebuild creates anew and swaps in), referenced
    /// tables first.
    fn tables(&self) -> &'static [&'static str];
}

/// Executes `sql` through the connection's statement cache: one round trip instead of two
/// (prepare, then execute) for statements run once per batch.
pub async fn execute(
    transaction: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = transaction.prepare_cached(sql).await?;
    transaction.execute(&statement, params).await
}
