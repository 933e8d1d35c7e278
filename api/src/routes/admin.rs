//! Operations: what the background workers are doing.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use eventstore::{relay_report, RelayReport, RelayStatus};

use crate::error::{ApiError, Problem};
use crate::routes::ApiContext;

#[derive(Serialize)]
pub struct RelayView {
    /// The relay running in this process, if any (another process may be the leader).
    process: Option<RelayStatus>,
    /// The durable state shared by all relays: checkpoint, backlog, horizon.
    store: RelayReport,
}

#[utoipa::path(
    get,
    path = "/v1/admin/relay",
    tag = "operations",
    summary = "The relay's state",
    description = "This process's relay (role, broker health, counters) and the durable checkpoint, backlog and gap-safe horizon shared by all relays.",
    responses((status = 200, description = "Relay state", body = Object))
)]
pub async fn relay(State(context): State<ApiContext>) -> Result<Json<RelayView>, ApiError> {
    let store = relay_report(context.store.pool(), "kafka").await?;
    Ok(Json(RelayView { process: context.relay.as_ref().map(|relay| relay.snapshot()), store }))
}

#[derive(Serialize)]
pub struct ProjectionsView {
    /// The workers running in this process.
    workers: Vec<projections::WorkerStatus>,
    /// Durable progress of every projection.
    projections: Vec<projections::status::ProjectionReport>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/projections",
    tag = "operations",
    summary = "The projections' progress",
    description = "Workers in this process and every projection's durable progress, lag and dead letters.",
    responses((status = 200, description = "Projection state", body = Object))
)]
pub async fn projections(
    State(context): State<ApiContext>,
) -> Result<Json<ProjectionsView>, ApiError> {
    let projections = projections::status::report(context.store.pool()).await?;
    Ok(Json(ProjectionsView {
        workers: context.projectors.iter().map(|worker| worker.snapshot()).collect(),
        projections,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/admin/dead-letters",
    tag = "operations",
    summary = "Parked messages",
    description = "Messages a projection could not apply after its retries, newest first (up to 500).",
    responses((status = 200, description = "Dead letters", body = Object))
)]
pub async fn dead_letters(
    State(context): State<ApiContext>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let client = context.store.client().await?;
    let items = projections::dead_letter::list(&client, 500).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

/// `POST /v1/admin/dead-letters/{id}/redrive`: apply a parked message again.
#[utoipa::path(
    post,
    path = "/v1/admin/dead-letters/{id}/redrive",
    tag = "operations",
    summary = "Re-drive a parked message",
    description = "Applies a dead-lettered message through its projection again (exactly once).",
    params(("id" = i64, Path, description = "The dead letter")),
    responses(
        (status = 200, description = "Applied", body = Object),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`redrive_failed`: already re-driven or still failing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: not a dead letter id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn redrive(
    State(context): State<ApiContext>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use projections::dead_letter::RedriveError;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::validation(domain::ValidationError::new("id", "must be a dead letter id"))
    })?;
    match projections::dead_letter::redrive(context.store.pool(), id).await {
        Ok(applied) => {
            Ok(Json(serde_json::json!({ "id": id, "redriven": true, "applied": applied })))
        }
        Err(RedriveError::NotFound(_)) => Err(ApiError::NotFound("dead letter".to_owned())),
        Err(error @ (RedriveError::AlreadyRedriven(_) | RedriveError::StillFailing(_))) => {
            Err(ApiError::RedriveFailed(error.to_string()))
        }
        Err(RedriveError::Store(error)) => Err(error.into()),
    }
}
