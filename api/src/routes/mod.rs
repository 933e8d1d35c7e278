//! The router, assembled from one module per resource, with the layers every request
//! passes through: correlation ids, tracing, metrics, panic capture, the body and time
//! limits; and per group of routes, the access it needs.

mod admin;
mod delivery;
mod health;
mod notifications;
mod orders;
mod payment_process;
mod payments;
mod session;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use std::time::Duration;

use crate::auth::{self, Access, Gate};
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::extract::BODY_LIMIT_BYTES;
use crate::{limits, metrics, openapi};

/// How requests are admitted: the token gate and the time limit.
#[derive(Clone)]
pub struct Admission {
    pub gate: Gate,
    pub request_timeout: Duration,
}

/// The router and its OpenAPI description, built from the same route list. Operations
/// routes are always served; the command and query API only with the `api` role.
pub fn router(context: ApiContext, admission: Admission, serve_api: bool) -> Router {
    let (router, spec) = routes(serve_api, &admission.gate).split_for_parts();
    let spec = openapi::finish(spec);
    router
        .merge(
            SwaggerUi::new("/docs")
                .external_url_unchecked("/openapi.json", openapi::to_json(&spec)),
        )
        .route("/asyncapi.json", axum::routing::get(asyncapi))
        .merge(console::router())
        .fallback(|| async { ApiError::NotFound("resource".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(from_fn_with_state(admission.request_timeout, limits::time_limit))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(CatchPanicLayer::custom(|_panic| {
            axum::response::IntoResponse::into_response(ApiError::internal(anyhow::anyhow!(
                "a request handler panicked"
            )))
        }))
        .layer(from_fn(metrics::track))
        .layer(from_fn(crate::trace::continue_trace))
        .layer(TraceLayer::new_for_http().make_span_with(crate::correlation::request_span))
        .layer(from_fn(crate::correlation::correlate))
        .with_state(context)
}

/// The AsyncAPI 3.0 document of the events on the bus, public like `/openapi.json`: what a
/// team consuming the orders channel from outside codes against.
async fn asyncapi(
    axum::extract::State(context): axum::extract::State<ApiContext>,
) -> axum::Json<serde_json::Value> {
    axum::Json(context.bus.asyncapi.as_ref().clone())
}

/// The OpenAPI description alone.
pub fn openapi_spec() -> utoipa::openapi::OpenApi {
    let (_, spec) = routes(true, &Gate::new(None, 1)).split_for_parts();
    openapi::finish(spec)
}

/// The OpenAPI description as `/openapi.json` serves it (for `ledger openapi`).
pub fn openapi_json() -> serde_json::Value {
    openapi::to_json(&openapi_spec())
}

fn routes(serve_api: bool, gate: &Gate) -> OpenApiRouter<ApiContext> {
    let needs = |access: Access| from_fn_with_state((gate.clone(), access), auth::require);
    let open = OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::render));
    // What the workers are doing is for anyone who may read; changing it is for admins.
    let status = OpenApiRouter::new()
        .routes(routes!(session::session))
        .routes(routes!(admin::relay))
        .routes(routes!(admin::projections))
        .routes(routes!(admin::dead_letters))
        .routes(routes!(delivery::delivery))
        .routes(routes!(payment_process::payment_service))
        .route_layer(needs(Access::Read));
    let actions = OpenApiRouter::new()
        .routes(routes!(admin::redrive))
        .routes(routes!(delivery::resend))
        .routes(routes!(admin::start_rebuild, admin::cancel_rebuild))
        .route_layer(needs(Access::Admin));
    let open = open.merge(status).merge(actions);
    if !serve_api {
        return open;
    }
    let commands = OpenApiRouter::new()
        .routes(routes!(orders::place_order))
        .routes(routes!(orders::capture_payment))
        .routes(routes!(orders::record_payment_failure))
        .routes(routes!(orders::refund_payment))
        .routes(routes!(orders::cancel_order))
        .routes(routes!(orders::ship_order))
        .route_layer(needs(Access::Write));
    let queries = OpenApiRouter::new()
        .routes(routes!(orders::get_order))
        .routes(routes!(orders::get_order_events))
        .routes(routes!(payment_process::get_payment_process))
        .routes(routes!(payments::list_payments))
        .routes(routes!(payments::get_payments))
        .routes(routes!(payments::customer_balance))
        .routes(routes!(notifications::list_notifications))
        .route_layer(needs(Access::Read));
    open.merge(commands).merge(queries)
}
