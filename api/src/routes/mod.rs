//! The router, assembled from one module per resource, with the layers every request
//! passes through: correlation ids, tracing, metrics, panic capture, the body and time
//! limits; and per group of routes, the access it needs.

mod admin;
mod health;
mod notifications;
mod orders;
pub(crate) mod payments;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use std::time::{Duration, Instant};

use eventstore::{EventStore, RelayStatusHandle};
use projections::rebuild::RunningRebuild;
use projections::WorkerStatusHandle;
use uuid::Uuid;

use crate::auth::{self, Access, Gate};
use crate::error::ApiError;
use crate::extract::BODY_LIMIT_BYTES;
use crate::{limits, metrics, openapi};

/// What handlers share.
#[derive(Clone)]
pub struct ApiContext {
    pub store: EventStore,
    /// The in-process relay, when this process runs one.
    pub relay: Option<RelayStatusHandle>,
    /// The in-process projection workers, when this process runs them.
    pub projectors: Vec<WorkerStatusHandle>,
    /// Renders `/metrics`; `None` if this process could not install the recorder.
    pub metrics: Option<PrometheusHandle>,
    /// Projection rebuilds started through this process's admin API, by projection.
    pub rebuilds: Rebuilds,
    /// The shared-transaction command writers; `None` runs each command on its own.
    pub group_commit: Option<crate::group_commit::GroupCommit>,
}

pub type Rebuilds =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, RunningRebuild>>>;

/// How long a point-in-time query waits for its projection to have applied the whole cut.
const AS_OF_WAIT: Duration = Duration::from_secs(2);

/// Makes `cut` answerable from `projection`'s read model: settles it in the store (see
/// `eventstore::settle`), then waits until the projection has applied every event inside
/// it (`projections::watermark`), else 504 `projection_lagging`. Returns the settled cut.
pub(crate) async fn settle_read_model(
    context: &ApiContext,
    projection: &'static str,
    cut: eventstore::Cut,
) -> Result<eventstore::Cut, ApiError> {
    if cut == eventstore::Cut::Latest {
        return Ok(cut);
    }
    let client = context.store.client().await?;
    let cut = eventstore::settle(&client, cut).await?;
    let mut watermark = projections::watermark::read(&client, projection).await?;
    let deadline = Instant::now() + AS_OF_WAIT;
    while !watermark.covers(cut) {
        if Instant::now() >= deadline {
            return Err(ApiError::CutNotApplied {
                projection,
                applied_through: watermark.position,
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        watermark = projections::watermark::advance(&client, projection).await?;
    }
    Ok(cut)
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
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
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
        .layer(TraceLayer::new_for_http().make_span_with(crate::correlation::request_span))
        .layer(from_fn(crate::correlation::correlate))
        .with_state(context)
}

/// The OpenAPI description alone (for `ledger openapi`).
pub fn openapi_spec() -> utoipa::openapi::OpenApi {
    let (_, spec) = routes(true, &Gate::new(None, 1)).split_for_parts();
    openapi::finish(spec)
}

fn routes(serve_api: bool, gate: &Gate) -> OpenApiRouter<ApiContext> {
    let needs = |access: Access| from_fn_with_state((gate.clone(), access), auth::require);
    let open = OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::render));
    let admin = OpenApiRouter::new()
        .routes(routes!(admin::relay))
        .routes(routes!(admin::projections))
        .routes(routes!(admin::dead_letters))
        .routes(routes!(admin::redrive))
        .routes(routes!(admin::start_rebuild, admin::cancel_rebuild))
        .route_layer(needs(Access::Admin));
    let open = open.merge(admin);
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
        .routes(routes!(payments::list_payments))
        .routes(routes!(payments::get_payments))
        .routes(routes!(payments::customer_balance))
        .routes(routes!(notifications::list_notifications))
        .route_layer(needs(Access::Read));
    open.merge(commands).merge(queries)
}
