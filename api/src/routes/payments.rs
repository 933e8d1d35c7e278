//! `/v1/payments` and `/v1/customers/{id}/balance`: the payments read model.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use serde::Serialize;

#[allow(unused_imports)]
use uuid::Uuid;

use projections::payments::{self, Balance, OrderPayments, PaymentSummary};
use projections::ProjectionKind;

use crate::context::ApiContext;
use crate::error::{ApiError, Problem};
use crate::extract::{OrderIdPath, PathText};
use crate::query::{cursor_after, AsOfParams, Params};
use crate::read_model::{settle_read_model, wait_until_applied};
use crate::views::Page;

const STATUSES: &[&str] =
    &["awaiting_payment", "partially_paid", "paid", "partially_refunded", "refunded", "cancelled"];

#[utoipa::path(
    get,
    path = "/v1/payments/{id}",
    tag = "queries",
    summary = "An order's payments",
    description = "The payments read model of one order: amounts due, captured, refunded and outstanding, its status and every attempt.",
    params(
        ("id" = Uuid, Path, description = "The order"),
        ("min_version" = Option<u32>, Query, description = "Read-your-writes: wait until the projection has applied this stream version of the order"),
        ("wait_ms" = Option<u32>, Query, description = "How long to wait for `min_version` (0 to 5000; default 0)", maximum = 5000),
        AsOfParams,
    ),
    responses(
        (status = 200, description = "The order's payments", body = OrderPayments),
        (status = 404, description = "`not_found`: the projection has no such order (yet)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a bad id or query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "`projection_lagging`: `min_version` not applied within `wait_ms`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_payments(
    State(context): State<ApiContext>,
    OrderIdPath(order_id): OrderIdPath,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<OrderPayments>, ApiError> {
    let mut params = Params::new(raw, &["min_version", "wait_ms", "as_of", "at_position"]);
    let wait = params.wait_for();
    let cut = params.cut();
    params.finish()?;
    if let Some((version, wait)) = wait {
        wait_until_applied(&context, ProjectionKind::Payments, order_id.as_uuid(), version, wait)
            .await?;
    }
    let cut = settle_read_model(&context, ProjectionKind::Payments, cut).await?;
    let client = context.store().client().await?;
    payments::get(&client, order_id.as_uuid(), cut)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("payments of this order".to_owned()))
}

#[utoipa::path(
    get,
    path = "/v1/payments",
    tag = "queries",
    summary = "List orders' payments",
    description = "Payment summaries in the order they were placed, filtered by customer and status.",
    params(
        ("customer_id" = Option<String>, Query, description = "Only this customer's orders"),
        ("status" = Option<String>, Query, description = "awaiting_payment, partially_paid, paid, partially_refunded, refunded or cancelled"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 500 (default 50)", minimum = 1, maximum = 500),
        AsOfParams,
    ),
    responses(
        (status = 200, description = "A page of payment summaries", body = Page<PaymentSummary>),
        (status = 422, description = "`validation_failed`: an unknown or bad query parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_payments(
    State(context): State<ApiContext>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<PaymentSummary>>, ApiError> {
    let mut params =
        Params::new(raw, &["customer_id", "status", "cursor", "limit", "as_of", "at_position"]);
    let customer_id = params.text("customer_id", 64);
    let status = params.one_of("status", STATUSES);
    let cursor = params.cursor();
    let limit = params.limit();
    let cut = params.cut();
    params.finish()?;
    let cut = settle_read_model(&context, ProjectionKind::Payments, cut).await?;
    let client = context.store().client().await?;
    let items =
        payments::list(&client, customer_id.as_deref(), status.as_deref(), cursor, limit, cut)
            .await?;
    let next =
        (items.len() as i64 == limit).then(|| items.last().map(|p| p.placed_position)).flatten();
    Ok(Json(Page { items, next_cursor: cursor_after(next) }))
}

#[utoipa::path(
    get,
    path = "/v1/customers/{id}/balance",
    tag = "queries",
    summary = "A customer's balances",
    description = "Per currency: what the customer's orders are due, captured, refunded and outstanding.",
    params(("id" = String, Path, description = "The customer id"), AsOfParams),
    responses(
        (status = 200, description = "Balances per currency", body = CustomerBalance),
        (status = 422, description = "`validation_failed`: a bad customer id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn customer_balance(
    State(context): State<ApiContext>,
    PathText(customer_id): PathText,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<CustomerBalance>, ApiError> {
    let customer = domain::CustomerId::parse(&customer_id)?;
    let mut params = Params::new(raw, &["as_of", "at_position"]);
    let cut = params.cut();
    params.finish()?;
    let cut = settle_read_model(&context, ProjectionKind::Payments, cut).await?;
    let client = context.store().client().await?;
    let balances = payments::customer_balance(&client, customer.as_str(), cut).await?;
    Ok(Json(CustomerBalance { customer_id: customer.as_str().to_owned(), balances }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CustomerBalance {
    pub customer_id: String,
    pub balances: Vec<Balance>,
}
