//! Waiting for a read model: until it has applied an order's version (read-your-writes),
//! or every event inside a point-in-time cut. A waiter looks at the database when it is
//! woken ([`projections::applied`]: read-your-writes by the batch that applies its
//! version, as-of by any batch), and at the latest every [`RECHECK`] in case a
//! notification was lost with a connection.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use projections::ProjectionKind;
use uuid::Uuid;

use crate::context::ApiContext;
use crate::error::ApiError;

/// How long a point-in-time query waits for its projection to have applied the whole cut.
const AS_OF_WAIT: Duration = Duration::from_secs(2);
/// The longest a waiter goes without looking, whatever the notifications say.
const RECHECK: Duration = Duration::from_millis(250);

/// Waits until `applied` moves, `RECHECK` passes or `deadline` comes, whichever is first.
async fn next_batch(applied: &mut watch::Receiver<u64>, deadline: Instant) {
    let until = deadline.min(Instant::now() + RECHECK);
    // A closed channel (no sender) is as good as a tick: the deadline still bounds the wait.
    let _ = tokio::time::timeout_at(until, applied.changed()).await;
}

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
    let mut applied = context.applied.subscribe(projection);
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
        // The first look advances at once: the watermark is moved after a batch, so a
        // read can find it a batch behind.
        applied.mark_unchanged();
        watermark = projections::watermark::advance(&client, projection.name()).await?;
        if !watermark.covers(cut) {
            next_batch(&mut applied, deadline).await;
        }
    }
    Ok(cut)
}

/// Read-your-writes: waits until `projection` has applied `min_version` of the order, for
/// at most `wait`, else answers 504 `projection_lagging`. An order the store does not hold
/// is 404 at once, a version past its last one 409 `version_conflict`.
pub(crate) async fn wait_until_applied(
    context: &ApiContext,
    projection: ProjectionKind,
    stream_id: Uuid,
    min_version: u32,
    wait: Duration,
) -> Result<(), ApiError> {
    let deadline = Instant::now() + wait;
    // Registered before looking: a batch committed after the look wakes the wait below.
    let mut applied_here = context.applied.wait_for(projection, stream_id, min_version);
    let mut looked_in_store = false;
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
        if !looked_in_store {
            // A version the store does not have can only be the client's mistake (it waits
            // for its own write): say so at once instead of a 504 after the wait.
            looked_in_store = true;
            match context.store().stream_version(stream_id).await? {
                0 => return Err(ApiError::NotFound("order".to_owned())),
                stored if stored < min_version => {
                    return Err(ApiError::VersionConflict {
                        expected_version: min_version,
                        actual_version: Some(stored),
                    })
                }
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            return Err(ApiError::ProjectionLagging {
                projection: projection.name(),
                applied_version: applied,
                min_version,
            });
        }
        applied_here.next(deadline.min(Instant::now() + RECHECK)).await;
    }
}
