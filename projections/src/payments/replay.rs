//! The payments read model folded in memory, for a rebuild's bulk replay.
//!
//! An attempt is final when its event comes; a version when the order's next event that
//! changes its payments closes it; an order's row and its open version at the end of the
//! history, or when the rebuild evicts the order.

use std::collections::hash_map::Entry;

use tokio_postgres::Client;

use super::model::{attempt, before_placement, changes_payments, version, State};
use super::tables::{AttemptRow, VersionRow};
use crate::error::ApplyError;
use crate::event::ProjectedEvent;
use crate::replay::{ByOrder, Replay};
use crate::table::copy;

#[derive(Default)]
pub struct PaymentsReplay {
    /// Each order's current version, which is also its `payments` row.
    current: ByOrder<VersionRow>,
    /// The current versions of orders evicted since the last take.
    evicted: Vec<VersionRow>,
    closed: Vec<VersionRow>,
    attempts: Vec<AttemptRow>,
}

/// Versions closed since the last take; the current versions (also their `payments` rows)
/// of the orders evicted and, at the end, of every order; new attempts.
pub struct PaymentRows {
    closed: Vec<VersionRow>,
    current: Vec<VersionRow>,
    attempts: Vec<AttemptRow>,
}

impl Replay for PaymentsReplay {
    type Rows = PaymentRows;

    fn feed(&mut self, event: &ProjectedEvent) -> Result<(), ApplyError> {
        if !changes_payments(&event.event) {
            return Ok(());
        }
        let open = |state: State| {
            VersionRow::open(event.stream_id, event.position, event.recorded_at, state)
        };
        // One lookup per event: the map is large and its entries scattered in memory.
        match (State::placed(event)?, self.current.entry(event.stream_id)) {
            (Some(placed), Entry::Occupied(mut slot)) => {
                slot.insert(open(placed));
            }
            (Some(placed), Entry::Vacant(slot)) => {
                slot.insert(open(placed));
            }
            (None, Entry::Occupied(mut slot)) => {
                let current = slot.get_mut();
                let mut state = current.state();
                state.evolve(event)?;
                let mut previous = std::mem::replace(current, open(state));
                previous.next_position = Some(event.position);
                previous.next_recorded_at = Some(event.recorded_at);
                self.closed.push(previous);
            }
            (None, Entry::Vacant(_)) => return Err(before_placement(event)),
        }
        if let Some(a) = attempt(&event.event) {
            self.attempts.push(AttemptRow {
                order_id: event.stream_id,
                stream_version: version(event)?,
                payment_id: a.payment_id.to_owned(),
                kind: a.kind,
                amount: a.amount,
                method: a.method.map(str::to_owned),
                reason: a.reason.map(str::to_owned),
                refund_id: a.refund_id.map(str::to_owned),
                recorded_at: event.recorded_at,
                position: event.position,
            });
        }
        Ok(())
    }

    fn evict(&mut self, order: uuid::Uuid) {
        if let Some(current) = self.current.remove(&order) {
            self.evicted.push(current);
        }
    }

    fn take(&mut self, end: bool) -> PaymentRows {
        let mut current = std::mem::take(&mut self.evicted);
        if end {
            current.extend(self.current.drain().map(|(_, current)| current));
        }
        PaymentRows {
            closed: std::mem::take(&mut self.closed),
            current,
            attempts: std::mem::take(&mut self.attempts),
        }
    }

    async fn write(client: &Client, schema: &str, rows: PaymentRows) -> Result<(), ApplyError> {
        copy(client, schema, &rows.closed).await?;
        copy(client, schema, &rows.current).await?;
        if !rows.current.is_empty() {
            let payments: Vec<_> = rows.current.iter().map(VersionRow::current).collect();
            copy(client, schema, &payments).await?;
        }
        copy(client, schema, &rows.attempts).await?;
        Ok(())
    }
}
