//! Operations: what the background workers are doing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use bus::relay::{relay_report, RelayReport, RelayStatus};
use bus::ConsumerStatus;
use eventstore::Cut;
use projections::rebuild::{RebuildStatus, Target};
use projections::{ProjectionKind, ProjectionStats};

use crate::context::ApiContext;
use crate::error::{ApiError, Problem};
use crate::extract::PathText;
use crate::query::{CutQuery, QueryParams};

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
    let store = relay_report(context.store().pool(), &context.bus.relay_name).await?;
    let process = context.roles.relay.as_ref().map(|relay| relay.borrow().clone());
    Ok(Json(RelayView { process, store }))
}

/// A consumer running in this process: its loop and what its projection applied.
#[derive(Serialize)]
pub struct WorkerView {
    #[serde(flatten)]
    stats: ProjectionStats,
    state: bus::ConsumerState,
    /// Messages on this worker's partitions not yet acknowledged (the consumer group's
    /// lag), as the broker last reported it.
    lag_messages: Option<i64>,
    /// The partitions this worker holds (none while `state` is `unassigned`).
    partitions: Option<Vec<i32>>,
    last_error: Option<String>,
}

impl WorkerView {
    fn new(status: &ConsumerStatus, stats: ProjectionStats) -> Self {
        Self {
            stats,
            state: status.state,
            lag_messages: status.lag_messages,
            partitions: status.partitions.clone(),
            last_error: status.last_error.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct ProjectionsView {
    /// The consumers running in this process.
    workers: Vec<WorkerView>,
    /// Durable progress of every projection.
    projections: Vec<projections::status::ProjectionReport>,
    /// Rebuilds started through this process, running or finished.
    rebuilds: Vec<RebuildStatus>,
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
    let projections = projections::status::report(context.store().pool()).await?;
    Ok(Json(ProjectionsView {
        workers: context
            .roles
            .consumers
            .iter()
            .map(|consumer| {
                WorkerView::new(&consumer.status.borrow(), consumer.stats.borrow().clone())
            })
            .collect(),
        projections,
        rebuilds: rebuild_statuses(&context),
    }))
}

fn rebuild_statuses(context: &ApiContext) -> Vec<RebuildStatus> {
    let rebuilds = context.rebuilds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut statuses: Vec<_> = rebuilds.values().map(|r| r.progress.snapshot()).collect();
    statuses.sort_by(|a, b| a.projection.cmp(&b.projection));
    statuses
}

fn known_projection(name: &str) -> Result<ProjectionKind, ApiError> {
    ProjectionKind::parse(name).ok_or_else(|| ApiError::NotFound(format!("projection {name}")))
}

/// `POST /v1/admin/projections/{name}/rebuild`: replay the event store into a new
/// generation and swap it in; or, with `as_of` / `at_position`, build it as of that cut
/// into `rebuild_<name>` and keep it there.
#[utoipa::path(
    post,
    path = "/v1/admin/projections/{name}/rebuild",
    tag = "operations",
    summary = "Rebuild a projection by replaying the event store",
    description = "Runs in the background; progress is in `GET /v1/admin/projections` (`rebuilds`). Queries keep being served from the live generation until the atomic swap. With `as_of` or `at_position` the projection is built as of that cut into the schema `rebuild_<name>` for investigation, and nothing is swapped.",
    params(("name" = String, Path, description = "payments or notifications"), CutQuery),
    responses(
        (status = 202, description = "Started", body = Object),
        (status = 404, description = "`not_found`: no such projection", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`rebuild_running`: this projection is being rebuilt", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn start_rebuild(
    State(context): State<ApiContext>,
    PathText(name): PathText,
    QueryParams(query): QueryParams<CutQuery>,
) -> Result<(StatusCode, Json<RebuildStatus>), ApiError> {
    let kind = known_projection(&name)?;
    let cut = query.cut()?;
    let target = if cut == Cut::Latest { Target::Live } else { Target::Cut(cut) };
    let mut rebuilds = context.rebuilds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if rebuilds.get(&kind).is_some_and(|running| !running.task.is_finished()) {
        return Err(ApiError::RebuildRunning(kind.name()));
    }
    let running = projections::rebuild::start(context.store().pool(), kind, target);
    let status = running.progress.snapshot();
    rebuilds.insert(kind, running);
    Ok((StatusCode::ACCEPTED, Json(status)))
}

/// `DELETE /v1/admin/projections/{name}/rebuild`: stop a running rebuild; the live
/// generation was never touched.
#[utoipa::path(
    delete,
    path = "/v1/admin/projections/{name}/rebuild",
    tag = "operations",
    summary = "Cancel a running rebuild",
    params(("name" = String, Path, description = "payments or notifications")),
    responses(
        (status = 202, description = "Cancelling", body = Object),
        (status = 404, description = "`not_found`: no rebuild of it runs here", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_rebuild(
    State(context): State<ApiContext>,
    PathText(name): PathText,
) -> Result<(StatusCode, Json<RebuildStatus>), ApiError> {
    let kind = known_projection(&name)?;
    let rebuilds = context.rebuilds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match rebuilds.get(&kind) {
        Some(running) if !running.task.is_finished() => {
            running.cancel.cancel();
            Ok((StatusCode::ACCEPTED, Json(running.progress.snapshot())))
        }
        _ => Err(ApiError::NotFound(format!("running rebuild of {kind}"))),
    }
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
    let client = context.store().client().await?;
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
    PathText(id): PathText,
) -> Result<Json<serde_json::Value>, ApiError> {
    use projections::dead_letter::RedriveError;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::validation(domain::ValidationError::new("id", "must be a dead letter id"))
    })?;
    match projections::dead_letter::redrive(context.store().pool(), id).await {
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
