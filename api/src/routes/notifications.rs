//! `/v1/notifications`: the notifications read model.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;

use domain::ValidationError;
use projections::notifications::{self, Notification};
use projections::ProjectionKind;
#[allow(unused_imports)]
use uuid::Uuid;

use crate::context::ApiContext;
use crate::error::{ApiError, Problem};
use crate::query::{cursor_after, AsOfParams, Params};
use crate::read_model::{settle_read_model, wait_until_applied};
use crate::views::Page;

#[utoipa::path(
    get,
    path = "/v1/notifications",
    tag = "queries",
    summary = "List notifications",
    description = "Notifications the ledger would send (order placed, payment captured/failed/refunded, cancelled, shipped) in event order. Replays never create a second one: each id derives from its event.",
    params(
        ("customer_id" = Option<String>, Query, description = "Only this customer's"),
        ("order_id" = Option<Uuid>, Query, description = "Only this order's"),
        ("status" = Option<String>, Query, description = "pending"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 500 (default 50)", minimum = 1, maximum = 500),
        ("min_version" = Option<u32>, Query, description = "Read-your-writes (needs `order_id`)"),
        ("wait_ms" = Option<u32>, Query, description = "How long to wait for `min_version` (0 to 5000)", maximum = 5000),
        AsOfParams,
    ),
    responses(
        (status = 200, description = "A page of notifications", body = Page<Notification>),
        (status = 422, description = "`validation_failed`: an unknown or bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "`projection_lagging`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_notifications(
    State(context): State<ApiContext>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Notification>>, ApiError> {
    let mut params = Params::new(
        raw,
        &[
            "customer_id",
            "order_id",
            "status",
            "cursor",
            "limit",
            "min_version",
            "wait_ms",
            "as_of",
            "at_position",
        ],
    );
    let customer_id = params.text("customer_id", 64);
    let order_id = params.uuid("order_id");
    let status = params.one_of("status", &["pending"]);
    let cursor = params.cursor();
    let limit = params.limit();
    let wait = params.wait_for();
    let cut = params.cut();
    params.finish()?;
    if let Some((version, wait)) = wait {
        let order_id = order_id.ok_or_else(|| {
            ApiError::validation(ValidationError::new("order_id", "is required with min_version"))
        })?;
        wait_until_applied(&context, ProjectionKind::Notifications, order_id, version, wait)
            .await?;
    }
    let cut = settle_read_model(&context, ProjectionKind::Notifications, cut).await?;
    let client = context.store().client().await?;
    let items = notifications::list(
        &client,
        customer_id.as_deref(),
        order_id,
        status.as_deref(),
        cursor,
        limit,
        cut,
    )
    .await?;
    let next = (items.len() as i64 == limit).then(|| items.last().map(|n| n.position)).flatten();
    Ok(Json(Page { items, next_cursor: cursor_after(next) }))
}
