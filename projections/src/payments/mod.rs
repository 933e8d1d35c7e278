//! The payments read model: per order what is due, captured, refunded and outstanding,
//! its status and every attempt, also as of any past point ([`queries`]); per customer
//! the totals by currency.
//!
//! - [`model`]: what each event does to an order's payments (shared with the replay).
//! - [`tables`]: the rows, declared once.
//! - [`replay`]: the same, folded in memory for a rebuild.

mod model;
pub mod queries;
mod replay;
mod tables;

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use uuid::Uuid;

use crate::error::ApplyError;
use crate::event::ProjectedEvent;
use crate::projection::execute;
use crate::projection::Projection;
use crate::table::insert;
use model::{attempt, before_placement, changes_payments, version, State};
use tables::{AttemptRow, PaymentRow, VersionRow};

pub use model::{AttemptKind, PaymentStatus};
pub use replay::PaymentsReplay;

/// The state of the batch's orders before it, to version each of its events.
const CURRENT_STATES: &str = "
    SELECT order_id, customer_id, currency, amount_due, captured, refunded, cancelled, placed_position, stream_version
      FROM payments WHERE order_id = ANY($1)";
/// Closes the versions that were current before the batch.
const CLOSE_VERSIONS: &str = "
    UPDATE payment_versions v SET next_position = d.next_position, next_recorded_at = d.next_recorded_at
      FROM unnest($1::uuid[], $2::int4[], $3::int8[], $4::timestamptz[])
           AS d (order_id, stream_version, next_position, next_recorded_at)
     WHERE v.order_id = d.order_id AND v.stream_version = d.stream_version";

pub struct Payments;

/// Versions current before the batch that its events close, one vector per column.
#[derive(Default)]
struct Closes {
    order_id: Vec<Uuid>,
    stream_version: Vec<i32>,
    next_position: Vec<i64>,
    next_recorded_at: Vec<chrono::DateTime<chrono::Utc>>,
}

async fn current_states(
    tx: &Transaction<'_>,
    orders: &[Uuid],
) -> Result<HashMap<Uuid, State>, ApplyError> {
    let statement = tx.prepare_cached(CURRENT_STATES).await?;
    tx.query(&statement, &[&orders])
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get(0)?,
                State {
                    customer_id: row.try_get(1)?,
                    currency: row.try_get(2)?,
                    amount_due: row.try_get(3)?,
                    captured: row.try_get(4)?,
                    refunded: row.try_get(5)?,
                    cancelled: row.try_get(6)?,
                    placed_position: row.try_get(7)?,
                    stream_version: row.try_get(8)?,
                },
            ))
        })
        .collect()
}

impl Projection for Payments {
    type Replay = PaymentsReplay;

    fn name(&self) -> &'static str {
        "payments"
    }

    fn replay(&self) -> PaymentsReplay {
        PaymentsReplay::default()
    }

    fn tables(&self) -> &'static [&'static str] {
        &["payments", "payment_attempts", "payment_versions"]
    }

    /// One version per event that changes the payments (the state after it, valid until
    /// the order's next such event), each attempt, and each order's row as its last
    /// version leaves it. Versions current before the batch are closed by their order's
    /// first event in it.
    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[ProjectedEvent],
    ) -> Result<(), ApplyError> {
        let events: Vec<&ProjectedEvent> =
            events.iter().filter(|e| changes_payments(&e.event)).collect();
        if events.is_empty() {
            return Ok(());
        }
        let mut orders: Vec<Uuid> = events.iter().map(|e| e.stream_id).collect();
        orders.sort_unstable();
        orders.dedup();
        let before = current_states(tx, &orders).await?;
        let mut states = before.clone();
        let mut versions: Vec<VersionRow> = Vec::with_capacity(events.len());
        // Each order's latest version in `versions`, closed when its next event comes.
        let mut latest: HashMap<Uuid, usize> = HashMap::new();
        let mut closes = Closes::default();
        let mut attempts = Vec::new();
        for event in events {
            if let Some(placed) = State::placed(event)? {
                states.insert(event.stream_id, placed);
            }
            let state = states.get_mut(&event.stream_id).ok_or_else(|| before_placement(event))?;
            state.evolve(event)?;
            match latest.get(&event.stream_id) {
                Some(&row) => {
                    versions[row].next_position = Some(event.position);
                    versions[row].next_recorded_at = Some(event.recorded_at);
                }
                None => {
                    if let Some(previous) = before.get(&event.stream_id) {
                        closes.order_id.push(event.stream_id);
                        closes.stream_version.push(previous.stream_version);
                        closes.next_position.push(event.position);
                        closes.next_recorded_at.push(event.recorded_at);
                    }
                }
            }
            latest.insert(event.stream_id, versions.len());
            versions.push(VersionRow::open(
                event.stream_id,
                event.position,
                event.recorded_at,
                state.clone(),
            ));
            if let Some(a) = attempt(&event.event) {
                attempts.push(AttemptRow {
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
        }
        let rows: Vec<PaymentRow> = latest.values().map(|row| versions[*row].current()).collect();
        let c = &closes;
        let close: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&c.order_id, &c.stream_version, &c.next_position, &c.next_recorded_at];
        // Independent rows: pipelined, one round trip for the four.
        tokio::try_join!(
            async {
                if c.order_id.is_empty() {
                    return Ok(0);
                }
                execute(tx, CLOSE_VERSIONS, &close).await
            },
            insert(tx, &versions),
            insert(tx, &rows),
            insert(tx, &attempts),
        )?;
        Ok(())
    }
}
