//! `/v1/payments` and `/v1/customers/{id}/balance`: the payments read model.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

#[allow(unused_imports)]
use uuid::Uuid;

use projections::payments::queries::{self, Balance, OrderPayments, PaymentSummary};
use projections::ProjectionKind;

use crate::context::ApiContext;
use crate::error::{ApiError, Problem};
use crate::extract::{OrderIdPath, PathText};
use crate::params::{wait_for, Cursor, Limit};
use crate::query::{cut, CutQuery, ListOrder, PaymentListQuery, PaymentQuery, QueryParams};
use crate::read_model::{settle_read_model, wait_until_applied};
use crate::views::Page;

#[utoipa::path(
    get,
    path = "/v1/payments/{id}",
    tag = "queries",
    summary = "An order's payments",
    description = "The payments read model of one order: amounts due, captured, refunded and outstanding, its status and every attempt.",
    params(("id" = Uuid, Path, description = "The order"), PaymentQuery),
    responses(
        (status = 200, description = "The order's payments", body = OrderPayments),
        (status = 404, description = "`not_found`: the projection has no such order (yet)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a bad id or query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`version_conflict`: `min_version` is past the order's last version in the store", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "`projection_lagging`: `min_version` not applied within `wait_ms`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_payments(
    State(context): State<ApiContext>,
    OrderIdPath(order_id): OrderIdPath,
    QueryParams(query): QueryParams<PaymentQuery>,
) -> Result<Json<OrderPayments>, ApiError> {
    let cut = cut(query.as_of, query.at_position)?;
    if let Some((version, wait)) = wait_for(query.min_version, query.wait_ms) {
        let stream = order_id.as_uuid();
        wait_until_applied(&context, ProjectionKind::Payments, stream, version, wait).await?;
    }
    let cut = settle_read_model(&context, ProjectionKind::Payments, cut).await?;
    let client = context.store().client().await?;
    queries::get(&client, order_id.as_uuid(), cut)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("payments of this order".to_owned()))
}

#[utoipa::path(
    get,
    path = "/v1/payments",
    tag = "queries",
    summary = "List orders' payments",
    description = "Payment summaries in the order they were placed (or the newest first, `order=newest`), filtered by customer and status.",
    params(PaymentListQuery),
    responses(
        (status = 200, description = "A page of payment summaries", body = Page<PaymentSummary>),
        (status = 422, description = "`validation_failed`: an unknown or bad query parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_payments(
    State(context): State<ApiContext>,
    QueryParams(query): QueryParams<PaymentListQuery>,
) -> Result<Json<Page<PaymentSummary>>, ApiError> {
    let cut = cut(query.as_of, query.at_position)?;
    let limit = Limit::or_default(query.limit);
    let cut = settle_read_model(&context, ProjectionKind::Payments, cut).await?;
    let client = context.store().client().await?;
    let customer = query.customer_id.as_ref().map(|id| id.as_str());
    let after = query.cursor.map(|c| c.0);
    let newest_first = query.order == Some(ListOrder::Newest);
    let items =
        queries::list(&client, customer, query.status, after, limit, cut, newest_first).await?;
    let next = (items.len() as i64 == limit).then(|| items.last().map(|p| p.placed_position));
    Ok(Json(Page { items, next_cursor: next.flatten().map(Cursor::after) }))
}

#[utoipa::path(
    get,
    path = "/v1/customers/{id}/balance",
    tag = "queries",
    summary = "A customer's balances",
    description = "Per currency: what the customer's orders are due, captured, refunded and outstanding.",
    params(("id" = inline(crate::shapes::CustomerIdText), Path, description = "The customer id"), CutQuery),
    responses(
        (status = 200, description = "Balances per currency", body = CustomerBalance),
        (status = 422, description = "`validation_failed`: a bad customer id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn customer_balance(
    State(context): State<ApiContext>,
    PathText(customer_id): PathText,
    QueryParams(query): QueryParams<CutQuery>,
) -> Result<Json<CustomerBalance>, ApiError> {
    let customer = domain::CustomerId::parse(&customer_id)?;
    let cut = query.cut()?;
    let cut = settle_read_model(&context, ProjectionKind::Payments, cut).await?;
    let client = context.store().client().await?;
    let balances = queries::customer_balance(&client, customer.as_str(), cut).await?;
    Ok(Json(CustomerBalance { customer_id: customer.as_str().to_owned(), balances }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CustomerBalance {
    pub customer_id: String,
    pub balances: Vec<Balance>,
}
