//! The router, assembled from one module per resource, with the layers every request
//! passes through: correlation ids, tracing, panic capture and the body limit.

mod admin;
mod health;
mod notifications;
mod orders;
pub(crate) mod payments;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use std::time::{Duration, Instant};

use eventstore::{EventStore, RelayStatusHandle};
use projections::WorkerStatusHandle;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::BODY_LIMIT_BYTES;
use crate::requests::{
    CancelOrderRequest, CapturePaymentRequest, RecordPaymentFailureRequest, RefundPaymentRequest,
    ShipOrderRequest,
};

/// What handlers share.
#[derive(Clone)]
pub struct ApiContext {
    pub store: EventStore,
    /// The in-process relay, when this process runs one.
    pub relay: Option<RelayStatusHandle>,
    /// The in-process projection workers, when this process runs them.
    pub projectors: Vec<WorkerStatusHandle>,
}

/// Read-your-writes: waits until `projection` has applied `min_version` of the order, for
/// at most `wait`, else answers 504 `projection_lagging`.
pub(crate) async fn wait_until_applied(
    context: &ApiContext,
    projection: &'static str,
    stream_id: Uuid,
    min_version: u32,
    wait: Duration,
) -> Result<(), ApiError> {
    let deadline = Instant::now() + wait;
    loop {
        let applied = {
            let client = context.store.client().await?;
            projections::apply::applied_version(&client, projection, stream_id)
                .await
                .map_err(ApiError::internal)?
        };
        if applied >= min_version {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ApiError::ProjectionLagging {
                projection,
                applied_version: applied,
                min_version,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Operations routes are always served; the command and query API only with the `api` role.
pub fn router(context: ApiContext, serve_api: bool) -> Router {
    let operations = Router::new()
        .route("/v1/admin/relay", get(admin::relay))
        .route("/v1/admin/projections", get(admin::projections))
        .route("/v1/admin/dead-letters", get(admin::dead_letters))
        .route("/v1/admin/dead-letters/{id}/redrive", post(admin::redrive))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    let api = Router::new()
        .route("/v1/orders", post(orders::place_order))
        .route("/v1/orders/{id}", get(orders::get_order))
        .route("/v1/orders/{id}/events", get(orders::get_order_events))
        .route("/v1/orders/{id}/payments", post(orders::order_command::<CapturePaymentRequest>))
        .route(
            "/v1/orders/{id}/payment-failures",
            post(orders::order_command::<RecordPaymentFailureRequest>),
        )
        .route("/v1/orders/{id}/refunds", post(orders::order_command::<RefundPaymentRequest>))
        .route("/v1/orders/{id}/cancellation", post(orders::order_command::<CancelOrderRequest>))
        .route("/v1/orders/{id}/shipment", post(orders::order_command::<ShipOrderRequest>))
        .route("/v1/payments", get(payments::list_payments))
        .route("/v1/payments/{id}", get(payments::get_payments))
        .route("/v1/customers/{id}/balance", get(payments::customer_balance))
        .route("/v1/notifications", get(notifications::list_notifications));
    let routes = if serve_api { operations.merge(api) } else { operations };
    routes
        .fallback(|| async { ApiError::NotFound("resource".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(CatchPanicLayer::custom(|_panic| {
            axum::response::IntoResponse::into_response(ApiError::internal(anyhow::anyhow!(
                "a request handler panicked"
            )))
        }))
        .layer(TraceLayer::new_for_http().make_span_with(crate::correlation::request_span))
        .layer(axum::middleware::from_fn(crate::correlation::correlate))
        .with_state(context)
}
