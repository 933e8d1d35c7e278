//! `GET /v1/orders/{id}/payment-process`: the payment service's saga for one order, now or
//! inside a point-in-time cut (every change of the saga is kept, with the time it was made
//! and the store position it reflected).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::context::ApiContext;
use crate::error::{ApiError, Problem};
use crate::extract::OrderIdPath;
use crate::query::{CutQuery, QueryParams};

/// The payment service's process for an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentProcessView {
    pub order_id: Uuid,
    /// `charging`, `paid`, `cancelling`, `cancelled`, `closed` (someone else ended the
    /// order) or `stuck` (needs a person: see `last_error`).
    pub step: &'static str,
    /// Why the order is being (or was) cancelled, for `cancelling`; what stopped it, for
    /// `stuck`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub payment_method: Option<String>,
    /// Charge attempts started.
    pub attempts: u32,
    /// The charge whose outcome is not recorded yet.
    #[schema(value_type = Option<Object>)]
    pub charge_in_flight: Option<serde_json::Value>,
    /// What came of each finished attempt, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub outcomes: Vec<serde_json::Value>,
    /// Refunds for a cancellation: payment, provider refund, whether recorded.
    #[schema(value_type = Vec<Object>)]
    pub refunds: Vec<serde_json::Value>,
    /// When the service acts next (absent: nothing left to do).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// The saga's revision, and when it was made.
    pub revision: i32,
    pub changed_at: DateTime<Utc>,
    /// The highest store position this state reflects.
    pub through_position: i64,
}

#[utoipa::path(
    get,
    path = "/v1/orders/{id}/payment-process",
    tag = "queries",
    summary = "The payment service's process for an order",
    description = "Its step, attempts, outcomes and refunds, as now or as of a point in time. \
                   404 when the order has no process (placed without a payment instruction, \
                   or before the payment service saw it).",
    params(("id" = Uuid, Path, description = "The order"), CutQuery),
    responses(
        (status = 200, description = "The process", body = PaymentProcessView),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all, fields(order_id = %order_id))]
pub async fn get_payment_process(
    State(context): State<ApiContext>,
    OrderIdPath(order_id): OrderIdPath,
    QueryParams(query): QueryParams<CutQuery>,
) -> Result<Json<PaymentProcessView>, ApiError> {
    let cut = query.cut()?;
    let client = context.store().client().await?;
    let cut = eventstore::settle(&client, cut).await?;
    let stored = payment_service::store::read(&client, order_id.as_uuid(), cut)
        .await?
        .ok_or_else(|| ApiError::NotFound("payment process".to_owned()))?;
    let process = stored.process;
    let reason = match &process.step {
        payment_service::Step::Cancelling { reason } | payment_service::Step::Stuck { reason } => {
            Some(reason.clone())
        }
        _ => None,
    };
    Ok(Json(PaymentProcessView {
        order_id: process.order_id,
        step: process.step.name(),
        reason,
        payment_method: process.payment_method.clone(),
        attempts: process.attempts,
        charge_in_flight: process.charge.as_ref().map(json),
        outcomes: process.outcomes.iter().map(json).collect(),
        refunds: process.refunds.iter().map(json).collect(),
        next_attempt_at: process.due_at,
        last_error: process.last_error.clone(),
        revision: stored.revision,
        changed_at: stored.changed_at,
        through_position: process.through_position,
    }))
}

/// A part of the saga as it is stored (its fields are the contract of the `Object`s above,
/// documented in docs/payment-service.md).
fn json(value: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

#[derive(Serialize)]
pub struct StepCount {
    step: String,
    processes: i64,
    /// Of those, due now (waiting for a worker).
    due: i64,
}

#[derive(Serialize)]
pub struct PaymentServiceView {
    /// The payment service's worker in this process, if any (others may run elsewhere).
    process: Option<payment_service::ServiceStatus>,
    /// Shared by every worker: the processes per step.
    steps: Vec<StepCount>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/payments",
    tag = "operations",
    summary = "The payment service",
    description = "This process's payment worker (running, processes advanced, last error) and the processes per step (`stuck` ones need a person).",
    responses((status = 200, description = "Payment service state", body = Object))
)]
pub async fn payment_service(
    State(context): State<ApiContext>,
) -> Result<Json<PaymentServiceView>, ApiError> {
    let client = context.store().client().await?;
    let steps = payment_service::store::counts(&client)
        .await?
        .into_iter()
        .map(|(step, processes, due)| StepCount { step, processes, due })
        .collect();
    let process = context.roles.payments.as_ref().map(|status| status.borrow().clone());
    Ok(Json(PaymentServiceView { process, steps }))
}
