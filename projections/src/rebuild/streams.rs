//! The bookkeeping `apply` keeps, kept by a rebuild's bulk replay instead; and which
//! orders the fold may forget.
//!
//! The fold holds each order's state until no later event can change it, which without a
//! bound is until the end of the history: memory in proportion to the number of orders.
//! Orders are busy for a while and then quiet (placed, paid and shipped within minutes or
//! days, refunded rarely later). So an order that has had no event in the last `window`
//! events of the history is **evicted**: its rows are written as they stand, as they
//! would be at the end, and the fold forgets it. If it has another event after all, it is
//! **revived**: that event and the order's later ones are not folded; the order's range of
//! versions is remembered, and once the bulk rows and their indexes exist those events
//! are applied through the projection's own `apply`, which reads the rows the eviction
//! wrote. Memory is then bounded by the orders active within the window (and the revived
//! ones' ranges), not by all the orders there are.

use std::collections::VecDeque;

use uuid::Uuid;

use crate::apply::AppliedRow;
use crate::error::ApplyError;
use crate::event::ProjectedEvent;
use crate::positions::Positions;
use crate::replay::ByOrder;
use crate::table::copy;

/// What the fold does with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fold {
    /// Folds it.
    Fold,
    /// Leaves it: its order was evicted, and it is applied after the bulk phase.
    Defer,
}

/// A revived order's versions left for `apply`, first to last (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Revived {
    pub(crate) first: u32,
    pub(crate) last: u32,
}

/// An order the fold holds: its last version, and the event count at its last event.
struct Held {
    version: u32,
    touched: u64,
}

/// The bookkeeping `apply` keeps, kept by the bulk replay: each held stream's last version
/// (the replay checks that none is skipped), the position of every event applied, and
/// which orders are quiet enough to evict (see the module documentation).
pub(crate) struct Streams {
    projection: &'static str,
    window: u64,
    held: ByOrder<Held>,
    /// Each event's order with the count at it, oldest first; an entry is stale once its
    /// order has had a later event. Never longer than the window.
    touches: VecDeque<(Uuid, u64)>,
    /// Events fed so far.
    fed: u64,
    /// Orders evicted so far (while none is, an order that does not start at version 1 is
    /// an inconsistency, not a revival).
    pub(crate) evicted_orders: u64,
    /// The last versions of orders evicted since the last take, to be written.
    evicted: Vec<AppliedRow>,
    revived: ByOrder<Revived>,
    /// Events left for `apply`.
    deferred: u64,
    /// Every event applied or to be applied, for the watermark.
    pub(crate) applied: Positions,
}

impl Streams {
    /// Bookkeeping for `projection` that evicts orders quiet for `window` events.
    pub(crate) fn new(projection: &'static str, window: u64) -> Self {
        Self {
            projection,
            window: window.max(1),
            held: ByOrder::default(),
            touches: VecDeque::new(),
            fed: 0,
            evicted_orders: 0,
            evicted: Vec::new(),
            revived: ByOrder::default(),
            deferred: 0,
            applied: Positions::default(),
        }
    }

    /// Takes the next event of the history, and says whether the fold takes it too.
    pub(crate) fn feed(&mut self, event: &ProjectedEvent) -> Result<Fold, ApplyError> {
        self.fed += 1;
        self.applied.insert(event.position);
        let version = event.stream_version;
        if let Some(revived) = self.revived.get_mut(&event.stream_id) {
            follows(event, revived.last)?;
            revived.last = version;
            self.deferred += 1;
            return Ok(Fold::Defer);
        }
        match self.held.get_mut(&event.stream_id) {
            Some(held) => {
                follows(event, held.version)?;
                held.version = version;
                held.touched = self.fed;
            }
            None if version == 1 || self.evicted_orders == 0 => {
                follows(event, 0)?;
                self.held.insert(event.stream_id, Held { version, touched: self.fed });
            }
            None => {
                // Evicted earlier (an order the store has events of before this one).
                self.revived.insert(event.stream_id, Revived { first: version, last: version });
                self.deferred += 1;
                return Ok(Fold::Defer);
            }
        }
        self.touches.push_back((event.stream_id, self.fed));
        Ok(Fold::Fold)
    }

    /// The orders that have been quiet for the window since the last call: forgotten
    /// here, and to be forgotten by the fold (after it writes their rows).
    pub(crate) fn evict_quiet(&mut self) -> Result<Vec<Uuid>, ApplyError> {
        let mut quiet = Vec::new();
        while let Some(&(stream_id, touched)) = self.touches.front() {
            if touched + self.window > self.fed {
                break;
            }
            self.touches.pop_front();
            let Some(held) = self.held.get(&stream_id) else { continue };
            if held.touched != touched {
                continue;
            }
            self.evicted.push(applied_row(self.projection, stream_id, held.version)?);
            self.held.remove(&stream_id);
            self.evicted_orders += 1;
            quiet.push(stream_id);
        }
        Ok(quiet)
    }

    /// The rows of the orders evicted since the last take.
    pub(crate) fn take_evicted(&mut self) -> Vec<AppliedRow> {
        std::mem::take(&mut self.evicted)
    }

    /// The revived orders, with the versions left for `apply`.
    pub(crate) fn take_revived(&mut self) -> Vec<(Uuid, Revived)> {
        self.revived.drain().collect()
    }

    /// Writes the held orders' last versions, and the count of events applied so far (the
    /// deferred ones are counted by `apply`, which applies them).
    pub(crate) async fn flush(
        &mut self,
        client: &tokio_postgres::Client,
        schema: &str,
    ) -> Result<(), ApplyError> {
        let mut rows = self.take_evicted();
        for (stream_id, held) in self.held.drain() {
            rows.push(applied_row(self.projection, stream_id, held.version)?);
        }
        copy(client, schema, &rows).await?;
        let folded = self.applied.len().saturating_sub(self.deferred);
        if let Ok(applied @ 1..) = i64::try_from(folded) {
            client
                .execute(
                    &format!(
                        "INSERT INTO {schema}.projection_status (projection, applied_events, last_position, last_applied_at, updated_at)
                         VALUES ($1, $2, $3, now(), now())"
                    ),
                    &[&self.projection, &applied, &self.applied.highest()],
                )
                .await?;
        }
        Ok(())
    }
}

fn applied_row(
    projection: &'static str,
    stream_id: Uuid,
    version: u32,
) -> Result<AppliedRow, ApplyError> {
    Ok(AppliedRow {
        projection,
        stream_id,
        stream_version: eventstore::to_stored_version(version)?,
    })
}

/// Checks that `event` comes right after version `last` of its order.
fn follows(event: &ProjectedEvent, last: u32) -> Result<(), ApplyError> {
    if event.stream_version == last + 1 {
        return Ok(());
    }
    Err(ApplyError::Inconsistent(format!(
        "order {} has version {} after {} in the gap-safe order",
        event.stream_id, event.stream_version, last
    )))
}
