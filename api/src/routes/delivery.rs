//! Notification delivery for operators: the dispatcher's state and queue, and sending a
//! failed notification again.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use delivery::queue::{self, Resend};
use delivery::DispatcherStatus;

use crate::context::ApiContext;
use crate::error::{ApiError, Problem};
use crate::extract::PathText;

#[derive(Serialize)]
pub struct QueueDepth {
    channel: String,
    /// Messages not yet delivered or failed.
    waiting: i64,
}

#[derive(Serialize)]
pub struct DeliveryView {
    /// The dispatcher running in this process, if any (others may run elsewhere).
    process: Option<DispatcherStatus>,
    /// Shared by every dispatcher.
    queue: Vec<QueueDepth>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/delivery",
    tag = "operations",
    summary = "Notification delivery",
    description = "This process's dispatcher (channels, counters, state) and the messages waiting per channel.",
    responses((status = 200, description = "Delivery state", body = Object))
)]
pub async fn delivery(State(context): State<ApiContext>) -> Result<Json<DeliveryView>, ApiError> {
    let client = context.store().client().await?;
    let queue = queue::depth(&client)
        .await?
        .into_iter()
        .map(|(channel, waiting)| QueueDepth { channel, waiting })
        .collect();
    let process = context.roles.dispatcher.as_ref().map(|status| status.borrow().clone());
    Ok(Json(DeliveryView { process, queue }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Resent {
    pub id: uuid::Uuid,
    /// The channels that will send it again.
    pub channels: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/v1/admin/notifications/{id}/resend",
    tag = "operations",
    summary = "Send a failed notification again",
    description = "Queues the notification again on every channel where its delivery failed for good (attempts start over). The dispatcher sends it with the same id, in its order's sequence.",
    params(("id" = uuid::Uuid, Path, description = "The notification")),
    responses(
        (status = 202, description = "Queued again", body = Resent),
        (status = 404, description = "`not_found`: no delivery of this notification exists", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`notification_not_failed`: none of its deliveries failed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: not a notification id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resend(
    State(context): State<ApiContext>,
    PathText(id): PathText,
) -> Result<(StatusCode, Json<Resent>), ApiError> {
    let id: uuid::Uuid = id.parse().map_err(|_| {
        ApiError::validation(domain::ValidationError::new(
            "id",
            "must be a notification id (a UUID)",
        ))
    })?;
    let mut client = context.store().client().await?;
    match queue::resend(&mut client, id).await? {
        Resend::Queued(channels) => Ok((StatusCode::ACCEPTED, Json(Resent { id, channels }))),
        Resend::NotFailed => Err(ApiError::NotificationNotFailed),
        Resend::Unknown => Err(ApiError::NotFound("notification delivery".to_owned())),
    }
}
