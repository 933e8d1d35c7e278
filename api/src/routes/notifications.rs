//! `/v1/notifications`: the notifications read model.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;

use domain::ValidationError;
use projections::notifications::{self, Notification};

use crate::error::ApiError;
use crate::query::{cursor_after, Params};
use crate::routes::payments::Page;
use crate::routes::{wait_until_applied, ApiContext};

pub async fn list_notifications(
    State(context): State<ApiContext>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Notification>>, ApiError> {
    let mut params = Params::new(
        raw,
        &["customer_id", "order_id", "status", "cursor", "limit", "min_version", "wait_ms"],
    );
    let customer_id = params.text("customer_id", 64);
    let order_id = params.uuid("order_id");
    let status = params.one_of("status", &["pending"]);
    let cursor = params.cursor();
    let limit = params.limit();
    let wait = params.wait_for();
    params.finish()?;
    if let Some((version, wait)) = wait {
        let order_id = order_id.ok_or_else(|| {
            ApiError::validation(ValidationError::new("order_id", "is required with min_version"))
        })?;
        wait_until_applied(&context, notifications::NAME, order_id, version, wait).await?;
    }
    let client = context.store.client().await?;
    let items = notifications::list(
        &client,
        customer_id.as_deref(),
        order_id,
        status.as_deref(),
        cursor,
        limit,
    )
    .await?;
    let next = (items.len() as i64 == limit).then(|| items.last().map(|n| n.position)).flatten();
    Ok(Json(Page { items, next_cursor: cursor_after(next) }))
}
