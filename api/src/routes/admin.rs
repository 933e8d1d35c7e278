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
    projections: serde_json::Value,
}

pub async fn projections(
    State(context): State<ApiContext>,
) -> Result<Json<ProjectionsView>, ApiError> {
    let client = context.store.pool().get().await.map_err(eventstore::StoreError::from)?;
    let rows = client
        .query(
            "SELECT json_agg(json_build_object('projection', projection, 'applied_events', applied_events,
                    'last_position', last_position, 'last_applied_at', last_applied_at,
                    'lag_events', (SELECT count(*) FROM events e WHERE e.global_position > coalesce(s.last_position, 0)))
                    ORDER BY projection)
               FROM projection_status s",
            &[],
        )
        .await
        .map_err(|e| ApiError::from(eventstore::StoreError::from(e)))?;
    let projections =
        rows.first().and_then(|row| row.get::<_, Option<serde_json::Value>>(0)).unwrap_or_default();
    Ok(Json(ProjectionsView {
        workers: context.projectors.iter().map(|worker| worker.snapshot()).collect(),
        projections,
    }))
}

pub async fn dead_letters(
    State(context): State<ApiContext>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let client = context.store.pool().get().await.map_err(eventstore::StoreError::from)?;
    let items = projections::dead_letter::list(&client, 500)
        .await
        .map_err(|e| ApiError::from(eventstore::StoreError::from(e)))?;
    Ok(Json(serde_json::json!({ "items": items })))
}
