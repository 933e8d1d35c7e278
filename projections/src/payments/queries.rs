//! Reading the payments read model: one order's payments, a page of orders, a customer's
//! balance; each current or as of a cut, from the temporal versions.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use eventstore::{stream_version, Cut, StoreError};
use serde::Serialize;
use uuid::Uuid;

use super::model::{AttemptKind, PaymentStatus};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PaymentSummary {
    pub order_id: Uuid,
    pub customer_id: String,
    pub currency: String,
    pub amount_due: i64,
    pub captured: i64,
    pub refunded: i64,
    pub outstanding: i64,
    pub status: PaymentStatus,
    pub stream_version: u32,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub placed_position: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub payment_id: String,
    pub kind: AttemptKind,
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

/// The columns [`summary`] reads from `payments` (macros, for `concat!`).
macro_rules! summary_columns {
    () => {
        "order_id, customer_id, currency, amount_due, captured, refunded, outstanding, status, \
         stream_version, updated_at, placed_position"
    };
}

/// The same from `payment_versions`, whose status and outstanding amount are computed as
/// read (the `payments` table stores its own).
macro_rules! version_columns {
    () => {
        concat!(
            "order_id, customer_id, currency, amount_due, captured, refunded, ",
            "amount_due - captured, ",
            version_status!(),
            ", stream_version, recorded_at, placed_position"
        )
    };
}

macro_rules! version_status {
    () => {
        "payment_status(amount_due, captured, refunded, cancelled)"
    };
}

/// The version of each order valid at the cut `$p` (position) / `$t` (time): made inside
/// it, and replaced after it (or not at all). An order placed after the cut has none; the
/// `placed_position` bound says so in a form that ends an index range on it.
macro_rules! valid_at {
    ($p:literal, $t:literal) => {
        concat!(
            "placed_position <= ",
            $p,
            " AND position <= ",
            $p,
            " AND recorded_at <= ",
            $t,
            " AND (next_position IS NULL OR next_position > ",
            $p,
            " OR next_recorded_at > ",
            $t,
            ")"
        )
    };
}

macro_rules! balance_totals {
    () => {
        "currency, sum(amount_due)::bigint, sum(captured)::bigint, sum(refunded)::bigint, \
         sum(amount_due - captured) FILTER (WHERE NOT cancelled)::bigint, count(*)"
    };
}

const CURRENT: &str = concat!("SELECT ", summary_columns!(), " FROM payments WHERE order_id = $1");
/// Within one order, positions and append times rise with the version: the last version
/// inside the cut is the highest, found by the primary key backwards.
const AS_OF: &str = concat!(
    "SELECT ",
    version_columns!(),
    " FROM payment_versions WHERE order_id = $1 AND position <= $2 AND recorded_at <= $3
      ORDER BY stream_version DESC LIMIT 1"
);
const ATTEMPTS: &str = "
    SELECT payment_id, kind, amount, method, reason, refund_id, stream_version, recorded_at
      FROM payment_attempts
     WHERE order_id = $1 AND coalesce(position, 0) <= $2 AND recorded_at <= $3
     ORDER BY stream_version";
/// A page after the keyset `$3` (`>` / `ASC`: oldest first; `<` / `DESC`: newest first).
macro_rules! page {
    ($after:literal, $direction:literal) => {
        concat!(
            "SELECT ",
            summary_columns!(),
            " FROM payments
             WHERE ($1::text IS NULL OR customer_id = $1)
               AND ($2::text IS NULL OR status = $2)
               AND placed_position ",
            $after,
            " $3
             ORDER BY placed_position ",
            $direction,
            " LIMIT $4"
        )
    };
}
macro_rules! page_as_of {
    ($after:literal, $direction:literal) => {
        concat!(
            "SELECT ",
            version_columns!(),
            " FROM payment_versions
             WHERE ($1::text IS NULL OR customer_id = $1)
               AND ($2::text IS NULL OR ",
            version_status!(),
            " = $2)
               AND placed_position ",
            $after,
            " $3 AND ",
            valid_at!("$5", "$6"),
            " ORDER BY placed_position ",
            $direction,
            " LIMIT $4"
        )
    };
}
const PAGE: &str = page!(">", "ASC");
const PAGE_NEWEST: &str = page!("<", "DESC");
const PAGE_AS_OF: &str = page_as_of!(">", "ASC");
const PAGE_AS_OF_NEWEST: &str = page_as_of!("<", "DESC");
const BALANCE: &str = concat!(
    "SELECT ",
    balance_totals!(),
    " FROM payments WHERE customer_id = $1 GROUP BY currency ORDER BY currency"
);
const BALANCE_AS_OF: &str = concat!(
    "SELECT ",
    balance_totals!(),
    " FROM payment_versions WHERE customer_id = $1 AND ",
    valid_at!("$2", "$3"),
    " GROUP BY currency ORDER BY currency"
);

fn summary(row: &tokio_postgres::Row) -> Result<PaymentSummary, StoreError> {
    Ok(PaymentSummary {
        order_id: row.try_get(0)?,
        customer_id: row.try_get(1)?,
        currency: row.try_get(2)?,
        amount_due: row.try_get(3)?,
        captured: row.try_get(4)?,
        refunded: row.try_get(5)?,
        outstanding: row.try_get(6)?,
        status: row.try_get(7)?,
        stream_version: stream_version(row, 8)?,
        updated_at: row.try_get(9)?,
        placed_position: row.try_get(10)?,
    })
}

/// One order's payments, with its attempts in stream order; as of `cut`, the state its
/// events inside the cut made.
pub async fn get(
    client: &impl GenericClient,
    order_id: Uuid,
    cut: Cut,
) -> Result<Option<OrderPayments>, StoreError> {
    let (position, time) = cut.bounds();
    let row = if cut == Cut::Latest {
        client.query_opt(CURRENT, &[&order_id]).await?
    } else {
        client.query_opt(AS_OF, &[&order_id, &position, &time]).await?
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let attempts = client
        .query(ATTEMPTS, &[&order_id, &position, &time])
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
                stream_version: stream_version(row, 6)?,
                recorded_at: row.try_get(7)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(OrderPayments { summary: summary(&row)?, attempts }))
}

/// A page of orders' payments in placement order (the newest first if `newest_first`),
/// after the keyset `after`.
pub async fn list(
    client: &impl GenericClient,
    customer_id: Option<&str>,
    status: Option<PaymentStatus>,
    after: Option<i64>,
    limit: i64,
    cut: Cut,
    newest_first: bool,
) -> Result<Vec<PaymentSummary>, StoreError> {
    let after = after.unwrap_or(if newest_first { i64::MAX } else { 0 });
    let rows = if cut == Cut::Latest {
        let page = if newest_first { PAGE_NEWEST } else { PAGE };
        client.query(page, &[&customer_id, &status, &after, &limit]).await?
    } else {
        let (position, time) = cut.bounds();
        let page = if newest_first { PAGE_AS_OF_NEWEST } else { PAGE_AS_OF };
        client.query(page, &[&customer_id, &status, &after, &limit, &position, &time]).await?
    };
    rows.iter().map(summary).collect()
}

/// Totals across a customer's orders, one entry per currency.
pub async fn customer_balance(
    client: &impl GenericClient,
    customer_id: &str,
    cut: Cut,
) -> Result<Vec<Balance>, StoreError> {
    let rows = if cut == Cut::Latest {
        client.query(BALANCE, &[&customer_id]).await?
    } else {
        let (position, time) = cut.bounds();
        client.query(BALANCE_AS_OF, &[&customer_id, &position, &time]).await?
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
