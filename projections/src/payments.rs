//! The payments read model: per order what is due, captured, refunded and outstanding,
//! its status and every attempt; per customer the totals by currency.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use domain::Event;
use eventstore::Cut;
use serde::Serialize;
use uuid::Uuid;

use crate::projection::execute;
use crate::{ApplyError, ProjectedEvent, Projection};

mod replay;
pub use replay::PaymentsReplay;

pub const NAME: &str = "payments";

const INSERT_ORDERS: &str = "
    INSERT INTO payments (order_id, customer_id, currency, amount_due, placed_position, stream_version, updated_at)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int4[], $7::timestamptz[])";
const UPDATE_ORDERS: &str = "
    UPDATE payments p
       SET captured = p.captured + d.captured, refunded = p.refunded + d.refunded,
           cancelled = p.cancelled OR d.cancelled, stream_version = d.stream_version,
           updated_at = d.updated_at
      FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::bool[], $5::int4[], $6::timestamptz[])
           AS d (order_id, captured, refunded, cancelled, stream_version, updated_at)
     WHERE p.order_id = d.order_id";
const INSERT_ATTEMPTS: &str = "
    INSERT INTO payment_attempts (order_id, stream_version, payment_id, kind, amount, method, reason, refund_id, recorded_at, position)
    SELECT * FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::int8[])";
/// The state of the batch's orders before it, to version each of its events.
const CURRENT_STATES: &str = "
    SELECT order_id, customer_id, currency, amount_due, captured, refunded, cancelled, placed_position, stream_version
      FROM payments WHERE order_id = ANY($1)";
const INSERT_VERSIONS: &str = "
    INSERT INTO payment_versions (order_id, stream_version, position, recorded_at, next_position, next_recorded_at,
                                  customer_id, currency, amount_due, captured, refunded, cancelled, placed_position)
    SELECT * FROM unnest($1::uuid[], $2::int4[], $3::int8[], $4::timestamptz[], $5::int8[], $6::timestamptz[],
                         $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::bool[], $13::int8[])";
/// Closes the versions that were current before the batch.
const CLOSE_VERSIONS: &str = "
    UPDATE payment_versions v SET next_position = d.next_position, next_recorded_at = d.next_recorded_at
      FROM unnest($1::uuid[], $2::int4[], $3::int8[], $4::timestamptz[])
           AS d (order_id, stream_version, next_position, next_recorded_at)
     WHERE v.order_id = d.order_id AND v.stream_version = d.stream_version";

pub struct Payments;

/// What a batch does to one order's row.
struct Change {
    captured: i64,
    refunded: i64,
    cancelled: bool,
    stream_version: i32,
    updated_at: DateTime<Utc>,
}

/// The columns of new payment attempts, one vector per column.
#[derive(Default)]
struct Attempts<'a> {
    order_id: Vec<Uuid>,
    stream_version: Vec<i32>,
    payment_id: Vec<&'a str>,
    kind: Vec<&'static str>,
    amount: Vec<i64>,
    method: Vec<Option<&'a str>>,
    reason: Vec<Option<&'a str>>,
    refund_id: Vec<Option<&'a str>>,
    recorded_at: Vec<DateTime<Utc>>,
    position: Vec<i64>,
}

impl<'a> Attempts<'a> {
    fn push(&mut self, event: &ProjectedEvent, attempt: NewAttempt<'a>) {
        self.order_id.push(event.stream_id);
        self.stream_version.push(version(event));
        self.payment_id.push(attempt.payment_id);
        self.kind.push(attempt.kind);
        self.amount.push(attempt.amount);
        self.method.push(attempt.method);
        self.reason.push(attempt.reason);
        self.refund_id.push(attempt.refund_id);
        self.recorded_at.push(event.recorded_at);
        self.position.push(event.position);
    }
}

/// A payment attempt an event records: its columns besides the event's own.
struct NewAttempt<'a> {
    payment_id: &'a str,
    kind: &'static str,
    amount: i64,
    method: Option<&'a str>,
    reason: Option<&'a str>,
    refund_id: Option<&'a str>,
}

/// The attempt `event` records, if it is one.
fn attempt(event: &Event) -> Option<NewAttempt<'_>> {
    Some(match event {
        Event::PaymentCaptured(e) => NewAttempt {
            payment_id: e.payment_id.as_str(),
            kind: "captured",
            amount: e.amount.amount_minor,
            method: Some(e.method.as_str()),
            reason: None,
            refund_id: None,
        },
        Event::PaymentFailed(e) => NewAttempt {
            payment_id: e.payment_id.as_str(),
            kind: "failed",
            amount: e.amount.amount_minor,
            method: None,
            reason: Some(e.reason.as_str()),
            refund_id: None,
        },
        Event::PaymentRefunded(e) => NewAttempt {
            payment_id: e.payment_id.as_str(),
            kind: "refunded",
            amount: e.amount.amount_minor,
            method: None,
            reason: Some(e.reason.as_str()),
            refund_id: Some(e.refund_id.as_str()),
        },
        _ => return None,
    })
}

/// An order's payments state, as a version row is written.
#[derive(Clone)]
struct State {
    customer_id: String,
    currency: String,
    amount_due: i64,
    captured: i64,
    refunded: i64,
    cancelled: bool,
    placed_position: i64,
    stream_version: i32,
}

impl State {
    /// The state an order's placement starts.
    fn placed(event: &ProjectedEvent) -> Option<Self> {
        let Event::OrderPlaced(e) = &event.event else { return None };
        Some(Self {
            customer_id: e.customer_id.as_str().to_owned(),
            currency: e.total.currency.code().to_owned(),
            amount_due: e.total.amount_minor,
            captured: 0,
            refunded: 0,
            cancelled: false,
            placed_position: event.position,
            stream_version: version(event),
        })
    }

    /// The state after `event` of the same order.
    fn evolve(&mut self, event: &ProjectedEvent) {
        match &event.event {
            Event::PaymentCaptured(e) => self.captured += e.amount.amount_minor,
            Event::PaymentRefunded(e) => self.refunded += e.amount.amount_minor,
            Event::OrderCancelled(_) => self.cancelled = true,
            _ => {}
        }
        self.stream_version = version(event);
    }
}

/// The columns of new versions, one vector per column.
#[derive(Default)]
struct Versions {
    order_id: Vec<Uuid>,
    stream_version: Vec<i32>,
    position: Vec<i64>,
    recorded_at: Vec<DateTime<Utc>>,
    next_position: Vec<Option<i64>>,
    next_recorded_at: Vec<Option<DateTime<Utc>>>,
    customer_id: Vec<String>,
    currency: Vec<String>,
    amount_due: Vec<i64>,
    captured: Vec<i64>,
    refunded: Vec<i64>,
    cancelled: Vec<bool>,
    placed_position: Vec<i64>,
}

/// Writes one version per event that changes the payments: the state after it, valid until
/// the order's next such event. Versions current before the batch are closed by their
/// order's first event in it.
async fn record_versions(
    tx: &Transaction<'_>,
    events: &[&ProjectedEvent],
    before: HashMap<Uuid, State>,
) -> Result<(), ApplyError> {
    let mut states = before.clone();
    let mut versions = Versions::default();
    // Index of each order's latest version row in `versions`, to close it when the next
    // event of the order comes.
    let mut latest: HashMap<Uuid, usize> = HashMap::new();
    let mut closes: (Vec<Uuid>, Vec<i32>, Vec<i64>, Vec<DateTime<Utc>>) = Default::default();
    for event in events {
        if let Some(placed) = State::placed(event) {
            states.insert(event.stream_id, placed);
        }
        let Some(state) = states.get_mut(&event.stream_id) else {
            return Err(before_placement(event));
        };
        state.evolve(event);
        match latest.get(&event.stream_id) {
            Some(&row) => {
                versions.next_position[row] = Some(event.position);
                versions.next_recorded_at[row] = Some(event.recorded_at);
            }
            None => {
                if let Some(previous) = before.get(&event.stream_id) {
                    closes.0.push(event.stream_id);
                    closes.1.push(previous.stream_version);
                    closes.2.push(event.position);
                    closes.3.push(event.recorded_at);
                }
            }
        }
        latest.insert(event.stream_id, versions.order_id.len());
        let v = &mut versions;
        v.order_id.push(event.stream_id);
        v.stream_version.push(state.stream_version);
        v.position.push(event.position);
        v.recorded_at.push(event.recorded_at);
        v.next_position.push(None);
        v.next_recorded_at.push(None);
        v.customer_id.push(state.customer_id.clone());
        v.currency.push(state.currency.clone());
        v.amount_due.push(state.amount_due);
        v.captured.push(state.captured);
        v.refunded.push(state.refunded);
        v.cancelled.push(state.cancelled);
        v.placed_position.push(state.placed_position);
    }
    if !closes.0.is_empty() {
        execute(tx, CLOSE_VERSIONS, &[&closes.0, &closes.1, &closes.2, &closes.3]).await?;
    }
    let v = &versions;
    execute(
        tx,
        INSERT_VERSIONS,
        &[
            &v.order_id,
            &v.stream_version,
            &v.position,
            &v.recorded_at,
            &v.next_position,
            &v.next_recorded_at,
            &v.customer_id,
            &v.currency,
            &v.amount_due,
            &v.captured,
            &v.refunded,
            &v.cancelled,
            &v.placed_position,
        ],
    )
    .await?;
    Ok(())
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
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(ApplyError::from)
}

/// Whether `event` changes an order's payments: its amounts, its status or its attempts.
/// Only these events make a version, and they alone set `stream_version` and `updated_at`:
/// shipping an order, or the marker that it is fully paid (recorded with the capture that
/// settles it), leaves its payments as they were.
fn changes_payments(event: &Event) -> bool {
    match event {
        Event::OrderPlaced(_)
        | Event::PaymentCaptured(_)
        | Event::PaymentFailed(_)
        | Event::PaymentRefunded(_)
        | Event::OrderCancelled(_) => true,
        Event::OrderFullyPaid(_) | Event::OrderShipped(_) => false,
    }
}

fn before_placement(event: &ProjectedEvent) -> ApplyError {
    ApplyError::Inconsistent(format!("order {} has events before its placement", event.stream_id))
}

fn version(event: &ProjectedEvent) -> i32 {
    i32::try_from(event.stream_version).unwrap_or(i32::MAX)
}

impl Projection for Payments {
    type Replay = PaymentsReplay;

    fn name(&self) -> &'static str {
        NAME
    }

    fn replay(&self) -> PaymentsReplay {
        PaymentsReplay::default()
    }

    fn tables(&self) -> &'static [&'static str] {
        &["payments", "payment_attempts", "payment_versions"]
    }

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
        record_versions(tx, &events, before).await?;

        let mut placed: Vec<&ProjectedEvent> = Vec::new();
        let mut changes: HashMap<Uuid, Change> = HashMap::new();
        let mut attempts = Attempts::default();
        for event in events {
            let change = changes.entry(event.stream_id).or_insert(Change {
                captured: 0,
                refunded: 0,
                cancelled: false,
                stream_version: 0,
                updated_at: event.recorded_at,
            });
            change.stream_version = version(event);
            change.updated_at = event.recorded_at;
            match &event.event {
                Event::PaymentCaptured(e) => change.captured += e.amount.amount_minor,
                Event::PaymentRefunded(e) => change.refunded += e.amount.amount_minor,
                Event::OrderCancelled(_) => change.cancelled = true,
                Event::OrderPlaced(_) => placed.push(event),
                _ => {}
            }
            if let Some(attempt) = attempt(&event.event) {
                attempts.push(event, attempt);
            }
        }

        if !placed.is_empty() {
            let mut columns = (
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            );
            for event in &placed {
                if let Event::OrderPlaced(e) = &event.event {
                    columns.0.push(event.stream_id);
                    columns.1.push(e.customer_id.as_str());
                    columns.2.push(e.total.currency.code());
                    columns.3.push(e.total.amount_minor);
                    columns.4.push(event.position);
                    columns.5.push(version(event));
                    columns.6.push(event.recorded_at);
                }
            }
            execute(
                tx,
                INSERT_ORDERS,
                &[
                    &columns.0, &columns.1, &columns.2, &columns.3, &columns.4, &columns.5,
                    &columns.6,
                ],
            )
            .await?;
        }

        let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (order_id, change) in &changes {
            columns.0.push(*order_id);
            columns.1.push(change.captured);
            columns.2.push(change.refunded);
            columns.3.push(change.cancelled);
            columns.4.push(change.stream_version);
            columns.5.push(change.updated_at);
        }
        let updated = execute(
            tx,
            UPDATE_ORDERS,
            &[&columns.0, &columns.1, &columns.2, &columns.3, &columns.4, &columns.5],
        )
        .await?;
        if updated != changes.len() as u64 {
            return Err(ApplyError::Inconsistent(format!(
                "{} of {} orders have no payments row",
                changes.len() as u64 - updated,
                changes.len()
            )));
        }

        if !attempts.order_id.is_empty() {
            let a = &attempts;
            execute(
                tx,
                INSERT_ATTEMPTS,
                &[
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
                ],
            )
            .await?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PaymentSummary {
    pub order_id: Uuid,
    pub customer_id: String,
    pub currency: String,
    pub amount_due: i64,
    pub captured: i64,
    pub refunded: i64,
    pub outstanding: i64,
    pub status: String,
    pub stream_version: u32,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub placed_position: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub payment_id: String,
    pub kind: String,
    pub amount: i64,
    pub method: Option<String>,
    pub reason: Option<String>,
    pub refund_id: Option<String>,
    pub stream_version: u32,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrderPayments {
    #[serde(flatten)]
    pub summary: PaymentSummary,
    pub attempts: Vec<Attempt>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Balance {
    pub currency: String,
    pub amount_due: i64,
    pub captured: i64,
    pub refunded: i64,
    pub outstanding: i64,
    pub orders: i64,
}

const SUMMARY_COLUMNS: &str = "order_id, customer_id, currency, amount_due, captured, refunded, outstanding, status, stream_version, updated_at, placed_position";

fn summary(row: &tokio_postgres::Row) -> Result<PaymentSummary, tokio_postgres::Error> {
    Ok(PaymentSummary {
        order_id: row.try_get(0)?,
        customer_id: row.try_get(1)?,
        currency: row.try_get(2)?,
        amount_due: row.try_get(3)?,
        captured: row.try_get(4)?,
        refunded: row.try_get(5)?,
        outstanding: row.try_get(6)?,
        status: row.try_get(7)?,
        stream_version: u32::try_from(row.try_get::<_, i32>(8)?).unwrap_or_default(),
        updated_at: row.try_get(9)?,
        placed_position: row.try_get(10)?,
    })
}

/// The bounds of a cut as (position, time); the one that does not apply is wide open.
pub(crate) fn bounds(cut: Cut) -> (i64, DateTime<Utc>) {
    match cut {
        Cut::Latest | Cut::Version(_) => (i64::MAX, DateTime::<Utc>::MAX_UTC),
        Cut::Position(position) => (position, DateTime::<Utc>::MAX_UTC),
        Cut::Time(time) => (i64::MAX, time),
    }
}

/// The version of each order valid at the cut `$P` (position) / `$T` (time): made inside
/// it, and replaced after it (or not at all). An order placed after the cut has none; the
/// `placed_position` bound says so in a form that ends an index range on it.
const VALID_AT: &str = "placed_position <= $P AND position <= $P AND recorded_at <= $T
    AND (next_position IS NULL OR next_position > $P OR next_recorded_at > $T)";

/// `VALID_AT` with the cut's bounds as the numbered parameters `p` and `t`.
fn valid_at(p: usize, t: usize) -> String {
    VALID_AT.replace("$P", &format!("${p}")).replace("$T", &format!("${t}"))
}

/// A version's status, computed as read (the `payments` table stores its own).
macro_rules! version_status {
    () => {
        "payment_status(amount_due, captured, refunded, cancelled)"
    };
}

/// As [`SUMMARY_COLUMNS`]; a version's status and outstanding amount are computed as read.
const VERSION_COLUMNS: &str = concat!(
    "order_id, customer_id, currency, amount_due, captured, refunded, amount_due - captured, ",
    version_status!(),
    ", stream_version, recorded_at, placed_position"
);

/// One order's payments, with its attempts in stream order; as of `cut`, the state its
/// events inside the cut made.
pub async fn get(
    client: &impl GenericClient,
    order_id: Uuid,
    cut: Cut,
) -> Result<Option<OrderPayments>, eventstore::StoreError> {
    let (position, time) = bounds(cut);
    let row = if cut == Cut::Latest {
        client
            .query_opt(
                &format!("SELECT {SUMMARY_COLUMNS} FROM payments WHERE order_id = $1"),
                &[&order_id],
            )
            .await?
    } else {
        // Within one order, positions and append times rise with the version: the last
        // version inside the cut is the highest, found by the primary key backwards.
        client
            .query_opt(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM payment_versions
                      WHERE order_id = $1 AND position <= $2 AND recorded_at <= $3
                      ORDER BY stream_version DESC LIMIT 1"
                ),
                &[&order_id, &position, &time],
            )
            .await?
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let attempts = client
        .query(
            "SELECT payment_id, kind, amount, method, reason, refund_id, stream_version, recorded_at
               FROM payment_attempts
              WHERE order_id = $1 AND coalesce(position, 0) <= $2 AND recorded_at <= $3
              ORDER BY stream_version",
            &[&order_id, &position, &time],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(Attempt {
                payment_id: row.try_get(0)?,
                kind: row.try_get(1)?,
                amount: row.try_get(2)?,
                method: row.try_get(3)?,
                reason: row.try_get(4)?,
                refund_id: row.try_get(5)?,
                stream_version: u32::try_from(row.try_get::<_, i32>(6)?).unwrap_or_default(),
                recorded_at: row.try_get(7)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(Some(OrderPayments { summary: summary(&row)?, attempts }))
}

/// A page of orders' payments, in placement order, after the keyset `after`.
pub async fn list(
    client: &impl GenericClient,
    customer_id: Option<&str>,
    status: Option<&str>,
    after: Option<i64>,
    limit: i64,
    cut: Cut,
) -> Result<Vec<PaymentSummary>, eventstore::StoreError> {
    let after = after.unwrap_or(0);
    let rows = if cut == Cut::Latest {
        client
            .query(
                &format!(
                    "SELECT {SUMMARY_COLUMNS} FROM payments
                      WHERE ($1::text IS NULL OR customer_id = $1)
                        AND ($2::text IS NULL OR status = $2)
                        AND placed_position > $3
                      ORDER BY placed_position LIMIT $4"
                ),
                &[&customer_id, &status, &after, &limit],
            )
            .await?
    } else {
        let (position, time) = bounds(cut);
        client
            .query(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM payment_versions
                      WHERE ($1::text IS NULL OR customer_id = $1)
                        AND ($2::text IS NULL OR {} = $2)
                        AND placed_position > $3 AND {}
                      ORDER BY placed_position LIMIT $4",
                    version_status!(),
                    valid_at(5, 6)
                ),
                &[&customer_id, &status, &after, &limit, &position, &time],
            )
            .await?
    };
    Ok(rows.iter().map(summary).collect::<Result<_, tokio_postgres::Error>>()?)
}

/// Totals across a customer's orders, one entry per currency.
pub async fn customer_balance(
    client: &impl GenericClient,
    customer_id: &str,
    cut: Cut,
) -> Result<Vec<Balance>, eventstore::StoreError> {
    const TOTALS: &str =
        "currency, sum(amount_due)::bigint, sum(captured)::bigint, sum(refunded)::bigint,
        sum(amount_due - captured) FILTER (WHERE NOT cancelled)::bigint, count(*)";
    let rows = if cut == Cut::Latest {
        client
            .query(
                &format!(
                    "SELECT {TOTALS} FROM payments WHERE customer_id = $1
                      GROUP BY currency ORDER BY currency"
                ),
                &[&customer_id],
            )
            .await?
    } else {
        let (position, time) = bounds(cut);
        client
            .query(
                &format!(
                    "SELECT {TOTALS} FROM payment_versions WHERE customer_id = $1 AND {}
                      GROUP BY currency ORDER BY currency",
                    valid_at(2, 3)
                ),
                &[&customer_id, &position, &time],
            )
            .await?
    };
    rows.iter()
        .map(|row| {
            Ok(Balance {
                currency: row.try_get(0)?,
                amount_due: row.try_get(1)?,
                captured: row.try_get(2)?,
                refunded: row.try_get(3)?,
                outstanding: row.try_get::<_, Option<i64>>(4)?.unwrap_or(0),
                orders: row.try_get(5)?,
            })
        })
        .collect()
}
