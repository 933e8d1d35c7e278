//! Waiting for a read model: until it has applied an order's version (read-your-writes),
//! or every event inside a point-in-time cut.

use std::time::{Duration, Instant};

use projections::ProjectionKind;
use uuid::Uuid;

use crate::context::ApiContext;
use crate::error::ApiError;

/// How long a point-in-time query waits for its projection to have applied the whole cut.
const AS_OF_WAIT: Duration = Duration::from_secs(2);

/// Makes `cut` answerable from `projection`'s read model: settles it in the store (see
/// `eventstore::settle`), then waits until the projection has applied every event inside
/// it (`projections::watermark`), else 504 `projection_lagging`. Returns the settled cut.
pub(crate) async fn settle_read_model(
    context: &ApiContext,
    projection: ProjectionKind,
    cut: eventstore::Cut,
) -> Result<eventstore::Cut, ApiError> {
    if cut == eventstore::Cut::Latest {
        return Ok(cut);
    }
    let client = context.store().client().await?;
    let cut = eventstore::settle(&client, cut).await?;
    let mut watermark = projections::watermark::read(&client, projection.name()).await?;
    let deadline = Instant::now() + AS_OF_WAIT;
    while !watermark.covers(cut) {
        if Instant::now() >= deadline {
            return Err(ApiError::CutNotApplied {
                projection: projection.name(),
                applied_through: watermark.position,
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        watermark = projections::watermark::advance(&client, projection.name()).await?;
    }
    Ok(cut)
}

/// Read-your-writes: waits until `projection` has applied `min_version` of the order, for
/// at most `wait`, else answers 504 `projection_lagging`.
pub(crate) async fn wait_until_applied(
    context: &ApiContext,
    projection: ProjectionKind,
    stream_id: Uuid,
    min_version: u32,
    wait: Duration,
) -> Result<(), ApiError> {
    let deadline = Instant::now() + wait;
    loop {
        let applied = {
            let client = context.store().client().await?;
            projections::apply::applied_version(&client, projection.name(), stream_id)
                .await
                .map_err(ApiError::internal)?
        };
        if applied >= min_version {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ApiError::ProjectionLagging {
                projection: projection.name(),
                applied_version: applied,
                min_version,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
