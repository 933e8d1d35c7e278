//! The payments read model: per order what is due, captured, refunded and outstanding,
//! its status and every attempt; per customer the totals by currency.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use domain::Event;
use serde::Serialize;
use uuid::Uuid;

use crate::{ApplyError, ProjectedEvent, Projection};

pub const NAME: &str = "payments";

const INSERT_ORDER: &str = "
    INSERT INTO payments (order_id, customer_id, currency, amount_due, placed_position, stream_version, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";
const ADD_CAPTURED: &str = "
    UPDATE payments SET captured = captured + $2, stream_version = $3, updated_at = $4 WHERE order_id = $1";
const ADD_REFUNDED: &str = "
    UPDATE payments SET refunded = refunded + $2, stream_version = $3, updated_at = $4 WHERE order_id = $1";
const CANCEL: &str = "
    UPDATE payments SET cancelled = true, stream_version = $2, updated_at = $3 WHERE order_id = $1";
const TOUCH: &str = "UPDATE payments SET stream_version = $2, updated_at = $3 WHERE order_id = $1";
const INSERT_ATTEMPT: &str = "
    INSERT INTO payment_attempts (order_id, stream_version, payment_id, kind, amount, method, reason, refund_id, recorded_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub struct Payments;

impl Projection for Payments {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn apply(&self, tx: &Transaction<'_>, event: &ProjectedEvent) -> Result<(), ApplyError> {
        let order = event.stream_id;
        let version = i32::try_from(event.stream_version).unwrap_or(i32::MAX);
        let at = event.recorded_at;
        let changed = match &event.event {
            Event::OrderPlaced(placed) => {
                tx.execute(
                    INSERT_ORDER,
                    &[
                        &order,
                        &placed.customer_id.as_str(),
                        &placed.total.currency.code(),
                        &placed.total.amount_minor,
                        &event.position,
                        &version,
                        &at,
                    ],
                )
                .await?
            }
            Event::PaymentCaptured(captured) => {
                attempt(
                    tx,
                    event,
                    captured.payment_id.as_str(),
                    "captured",
                    captured.amount.amount_minor,
                    Some(captured.method.as_str()),
                    None,
                    None,
                )
                .await?;
                tx.execute(ADD_CAPTURED, &[&order, &captured.amount.amount_minor, &version, &at])
                    .await?
            }
            Event::PaymentFailed(failed) => {
                attempt(
                    tx,
                    event,
                    failed.payment_id.as_str(),
                    "failed",
                    failed.amount.amount_minor,
                    None,
                    Some(failed.reason.as_str()),
                    None,
                )
                .await?;
                tx.execute(TOUCH, &[&order, &version, &at]).await?
            }
            Event::PaymentRefunded(refunded) => {
                attempt(
                    tx,
                    event,
                    refunded.payment_id.as_str(),
                    "refunded",
                    refunded.amount.amount_minor,
                    None,
                    Some(refunded.reason.as_str()),
                    Some(refunded.refund_id.as_str()),
                )
                .await?;
                tx.execute(ADD_REFUNDED, &[&order, &refunded.amount.amount_minor, &version, &at])
                    .await?
            }
            Event::OrderCancelled(_) => tx.execute(CANCEL, &[&order, &version, &at]).await?,
            Event::OrderFullyPaid(_) | Event::OrderShipped(_) => {
                tx.execute(TOUCH, &[&order, &version, &at]).await?
            }
        };
        if changed == 1 {
            Ok(())
        } else {
            Err(ApplyError::Inconsistent(format!("no payments row for order {order}")))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    tx: &Transaction<'_>,
    event: &ProjectedEvent,
    payment_id: &str,
    kind: &str,
    amount: i64,
    method: Option<&str>,
    reason: Option<&str>,
    refund_id: Option<&str>,
) -> Result<(), ApplyError> {
    let version = i32::try_from(event.stream_version).unwrap_or(i32::MAX);
    tx.execute(
        INSERT_ATTEMPT,
        &[
            &event.stream_id,
            &version,
            &payment_id,
            &kind,
            &amount,
            &method,
            &reason,
            &refund_id,
            &event.recorded_at,
        ],
    )
    .await?;
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderPayments {
    #[serde(flatten)]
    pub summary: PaymentSummary,
    pub attempts: Vec<Attempt>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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

/// One order's payments, with its attempts in stream order.
pub async fn get(
    client: &impl GenericClient,
    order_id: Uuid,
) -> Result<Option<OrderPayments>, tokio_postgres::Error> {
    let Some(row) = client
        .query_opt(
            &format!("SELECT {SUMMARY_COLUMNS} FROM payments WHERE order_id = $1"),
            &[&order_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let attempts = client
        .query(
            "SELECT payment_id, kind, amount, method, reason, refund_id, stream_version, recorded_at
               FROM payment_attempts WHERE order_id = $1 ORDER BY stream_version",
            &[&order_id],
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
) -> Result<Vec<PaymentSummary>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {SUMMARY_COLUMNS} FROM payments
                  WHERE ($1::text IS NULL OR customer_id = $1)
                    AND ($2::text IS NULL OR status = $2)
                    AND placed_position > $3
                  ORDER BY placed_position LIMIT $4"
            ),
            &[&customer_id, &status, &after.unwrap_or(0), &limit],
        )
        .await?;
    rows.iter().map(summary).collect()
}

/// Totals across a customer's orders, one entry per currency.
pub async fn customer_balance(
    client: &impl GenericClient,
    customer_id: &str,
) -> Result<Vec<Balance>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT currency, sum(amount_due)::bigint, sum(captured)::bigint, sum(refunded)::bigint,
                    sum(outstanding) FILTER (WHERE NOT cancelled)::bigint, count(*)
               FROM payments WHERE customer_id = $1 GROUP BY currency ORDER BY currency",
            &[&customer_id],
        )
        .await?;
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
