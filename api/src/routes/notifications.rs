//! `/v1/notifications`: the notifications read model.

use axum::extract::State;
use axum::Json;

use domain::ValidationError;
use projections::notifications::queries::{self, Notification};
use projections::ProjectionKind;

use crate::context::ApiContext;
use crate::error::{ApiError, Problem};
use crate::params::{wait_for, Cursor, Limit};
use crate::query::{cut, NotificationListQuery, QueryParams};
use crate::read_model::{settle_read_model, wait_until_applied};
use crate::views::Page;

#[utoipa::path(
    get,
    path = "/v1/notifications",
    tag = "queries",
    summary = "List notifications",
    description = "Notifications the ledger sends (order placed, payment captured/failed/refunded, cancelled, shipped) in event order. Replays never create a second one: each id derives from its event.",
    params(NotificationListQuery),
    responses(
        (status = 200, description = "A page of notifications", body = Page<Notification>),
        (status = 422, description = "`validation_failed`: an unknown or bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: with `min_version`, no such order in the store", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`version_conflict`: `min_version` is past the order's last version in the store", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "`projection_lagging`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_notifications(
    State(context): State<ApiContext>,
    QueryParams(query): QueryParams<NotificationListQuery>,
) -> Result<Json<Page<Notification>>, ApiError> {
    let cut = cut(query.as_of, query.at_position)?;
    let limit = Limit::or_default(query.limit);
    let order_id = query.order_id.map(|id| id.as_uuid());
    if let Some((version, wait)) = wait_for(query.min_version, query.wait_ms) {
        let order_id = order_id.ok_or_else(|| {
            ApiError::validation(ValidationError::new("order_id", "is required with min_version"))
        })?;
        wait_until_applied(&context, ProjectionKind::Notifications, order_id, version, wait)
            .await?;
    }
    let cut = settle_read_model(&context, ProjectionKind::Notifications, cut).await?;
    let client = context.store().client().await?;
    let customer = query.customer_id.as_ref().map(|id| id.as_str());
    let after = query.cursor.map(|c| c.0);
    let items = queries::list(&client, customer, order_id, query.status, after, limit, cut).await?;
    let next = (items.len() as i64 == limit).then(|| items.last().map(|n| n.position));
    Ok(Json(Page { items, next_cursor: next.flatten().map(Cursor::after) }))
}
