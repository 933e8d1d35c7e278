//! The payments read model folded in memory, for a rebuild's bulk replay.
//!
//! An attempt is final when its event comes; a version when the order's next event that
//! changes its payments closes it; an order's row and its open version only at the end of
//! the history.

use std::collections::hash_map::Entry;

use chrono::{DateTime, Utc};
use tokio_postgres::types::Type;
use tokio_postgres::Client;
use uuid::Uuid;

use super::{attempt, before_placement, changes_payments, version, State};
use crate::replay::{copy_in, ByOrder, Replay};
use crate::{ApplyError, ProjectedEvent};

const VERSION_COLUMNS: &[&str] = &[
    "order_id",
    "stream_version",
    "position",
    "recorded_at",
    "next_position",
    "next_recorded_at",
    "customer_id",
    "currency",
    "amount_due",
    "captured",
    "refunded",
    "cancelled",
    "placed_position",
];
const VERSION_TYPES: &[Type] = &[
    Type::UUID,
    Type::INT4,
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BOOL,
    Type::INT8,
];
const ATTEMPT_COLUMNS: &[&str] = &[
    "order_id",
    "stream_version",
    "payment_id",
    "kind",
    "amount",
    "method",
    "reason",
    "refund_id",
    "recorded_at",
    "position",
];
const ATTEMPT_TYPES: &[Type] = &[
    Type::UUID,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::INT8,
];
const ORDER_COLUMNS: &[&str] = &[
    "order_id",
    "customer_id",
    "currency",
    "amount_due",
    "captured",
    "refunded",
    "cancelled",
    "placed_position",
    "stream_version",
    "updated_at",
];
const ORDER_TYPES: &[Type] = &[
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BOOL,
    Type::INT8,
    Type::INT4,
    Type::TIMESTAMPTZ,
];

/// One row of `payment_versions`.
struct Version {
    order_id: Uuid,
    position: i64,
    recorded_at: DateTime<Utc>,
    next: Option<(i64, DateTime<Utc>)>,
    state: State,
}

/// One row of `payment_attempts`.
struct AttemptRow {
    order_id: Uuid,
    stream_version: i32,
    payment_id: String,
    kind: &'static str,
    amount: i64,
    method: Option<String>,
    reason: Option<String>,
    refund_id: Option<String>,
    recorded_at: DateTime<Utc>,
    position: i64,
}

#[derive(Default)]
pub struct PaymentsReplay {
    /// Each order's current version, which is also its `payments` row.
    current: ByOrder<Version>,
    closed: Vec<Version>,
    attempts: Vec<AttemptRow>,
}

/// Versions closed since the last take; at the end, each order's current version (also
/// its `payments` row); new attempts.
pub struct PaymentRows {
    closed: Vec<Version>,
    current: Vec<Version>,
    attempts: Vec<AttemptRow>,
}

impl Replay for PaymentsReplay {
    type Rows = PaymentRows;

    fn feed(&mut self, event: &ProjectedEvent) -> Result<(), ApplyError> {
        if !changes_payments(&event.event) {
            return Ok(());
        }
        let row = |state| Version {
            order_id: event.stream_id,
            position: event.position,
            recorded_at: event.recorded_at,
            next: None,
            state,
        };
        // One lookup per event: the map is large and its entries scattered in memory.
        match (State::placed(event), self.current.entry(event.stream_id)) {
            (Some(placed), Entry::Occupied(mut slot)) => {
                slot.insert(row(placed));
            }
            (Some(placed), Entry::Vacant(slot)) => {
                slot.insert(row(placed));
            }
            (None, Entry::Occupied(mut slot)) => {
                let current = slot.get_mut();
                let mut state = current.state.clone();
                state.evolve(event);
                let mut previous = std::mem::replace(current, row(state));
                previous.next = Some((event.position, event.recorded_at));
                self.closed.push(previous);
            }
            (None, Entry::Vacant(_)) => return Err(before_placement(event)),
        }
        if let Some(a) = attempt(&event.event) {
            self.attempts.push(AttemptRow {
                order_id: event.stream_id,
                stream_version: version(event),
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

    fn take(&mut self, end: bool) -> PaymentRows {
        PaymentRows {
            closed: std::mem::take(&mut self.closed),
            current: if end { self.current.drain().map(|(_, v)| v).collect() } else { Vec::new() },
            attempts: std::mem::take(&mut self.attempts),
        }
    }

    async fn write(client: &Client, schema: &str, rows: PaymentRows) -> Result<(), ApplyError> {
        let mut versions =
            copy_in(client, schema, "payment_versions", VERSION_COLUMNS, VERSION_TYPES).await?;
        for v in rows.closed.iter().chain(&rows.current) {
            let s = &v.state;
            let (next_position, next_recorded_at) = v.next.unzip();
            versions
                .as_mut()
                .write(&[
                    &v.order_id,
                    &s.stream_version,
                    &v.position,
                    &v.recorded_at,
                    &next_position,
                    &next_recorded_at,
                    &s.customer_id,
                    &s.currency,
                    &s.amount_due,
                    &s.captured,
                    &s.refunded,
                    &s.cancelled,
                    &s.placed_position,
                ])
                .await?;
        }
        versions.as_mut().finish().await?;

        if !rows.current.is_empty() {
            let mut orders =
                copy_in(client, schema, "payments", ORDER_COLUMNS, ORDER_TYPES).await?;
            for v in &rows.current {
                let s = &v.state;
                orders
                    .as_mut()
                    .write(&[
                        &v.order_id,
                        &s.customer_id,
                        &s.currency,
                        &s.amount_due,
                        &s.captured,
                        &s.refunded,
                        &s.cancelled,
                        &s.placed_position,
                        &s.stream_version,
                        &v.recorded_at,
                    ])
                    .await?;
            }
            orders.as_mut().finish().await?;
        }

        let mut attempts =
            copy_in(client, schema, "payment_attempts", ATTEMPT_COLUMNS, ATTEMPT_TYPES).await?;
        for a in &rows.attempts {
            attempts
                .as_mut()
                .write(&[
                    &a.order_id,
                    &a.stream_version,
                    &a.payment_id,
                    &a.kind,
                    &a.amount,
                    &a.method,
                    &a.reason,
                    &a.refund_id,
                    &a.recorded_at,
                    &a.position,
                ])
                .await?;
        }
        attempts.as_mut().finish().await?;
        Ok(())
    }
}
