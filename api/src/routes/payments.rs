//! `/v1/payments` and `/v1/customers/{id}/balance`: the payments read model.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use projections::payments::{self, OrderPayments, PaymentSummary};

use crate::error::ApiError;
use crate::extract::OrderIdPath;
use crate::query::{cursor_after, Params};
use crate::routes::{wait_until_applied, ApiContext};

const STATUSES: &[&str] =
    &["awaiting_payment", "partially_paid", "paid", "partially_refunded", "refunded", "cancelled"];

pub async fn get_payments(
    State(context): State<ApiContext>,
    OrderIdPath(order_id): OrderIdPath,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<OrderPayments>, ApiError> {
    let mut params = Params::new(raw, &["min_version", "wait_ms"]);
    let wait = params.wait_for();
    params.finish()?;
    if let Some((version, wait)) = wait {
        wait_until_applied(&context, payments::NAME, order_id.as_uuid(), version, wait).await?;
    }
    let client = context.store.client().await?;
    payments::get(&client, order_id.as_uuid())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("payments of this order".to_owned()))
}

#[derive(Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub async fn list_payments(
    State(context): State<ApiContext>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<PaymentSummary>>, ApiError> {
    let mut params = Params::new(raw, &["customer_id", "status", "cursor", "limit"]);
    let customer_id = params.text("customer_id", 64);
    let status = params.one_of("status", STATUSES);
    let cursor = params.cursor();
    let limit = params.limit();
    params.finish()?;
    let client = context.store.client().await?;
    let items =
        payments::list(&client, customer_id.as_deref(), status.as_deref(), cursor, limit).await?;
    let next =
        (items.len() as i64 == limit).then(|| items.last().map(|p| p.placed_position)).flatten();
    Ok(Json(Page { items, next_cursor: cursor_after(next) }))
}

pub async fn customer_balance(
    State(context): State<ApiContext>,
    Path(customer_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let customer = domain::CustomerId::parse(&customer_id)?;
    let client = context.store.client().await?;
    let balances = payments::customer_balance(&client, customer.as_str()).await?;
    Ok(Json(json!({ "customer_id": customer.as_str(), "balances": balances })))
}
