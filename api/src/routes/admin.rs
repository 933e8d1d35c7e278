//! Operations: what the background workers are doing.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use eventstore::{relay_report, RelayReport, RelayStatus};

use crate::error::ApiError;
use crate::routes::ApiContext;

#[derive(Serialize)]
pub struct RelayView {
    /// The relay running in this process, if any (another process may be the leader).
    process: Option<RelayStatus>,
    /// The durable state shared by all relays: checkpoint, backlog, horizon.
    store: RelayReport,
}

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

pub async fn projections(
    State(context): State<ApiContext>,
) -> Result<Json<ProjectionsView>, ApiError> {
    let projections = projections::status::report(context.store.pool()).await?;
    Ok(Json(ProjectionsView {
        workers: context.projectors.iter().map(|worker| worker.snapshot()).collect(),
        projections,
    }))
}

pub async fn dead_letters(
    State(context): State<ApiContext>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let client = context.store.client().await?;
    let items = projections::dead_letter::list(&client, 500).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

/// `POST /v1/admin/dead-letters/{id}/redrive`: apply a parked message again.
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
