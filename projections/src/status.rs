//! The durable progress of every projection, for `ledger projections status`, the admin
//! endpoint and the metrics: events applied, the last position applied, the events past
//! it (lag), the events below it not applied yet (holes the bus left, or partitions that
//! are behind), the watermark and its age, and dead letters waiting.

use chrono::{DateTime, Utc};
use eventstore::StoreError;
use serde::Serialize;

use crate::kind::ProjectionKind;
use crate::watermark;

#[derive(Clone, Debug, Serialize)]
pub struct ProjectionReport {
    pub projection: ProjectionKind,
    pub applied_events: i64,
    /// The highest position applied.
    pub last_position: Option<i64>,
    pub last_applied_at: Option<DateTime<Utc>>,
    /// Events in the store past the last position applied.
    pub lag_events: i64,
    /// Events at or below the last position applied that are not applied yet: another
    /// partition behind, or a message the bus lost (the catch-up fills it in seconds).
    pub unapplied_below_highest: i64,
    /// Every event up to this position is applied.
    pub watermark_position: i64,
    /// Every event appended at or before this time is applied: what point-in-time reads
    /// can answer.
    pub complete_through: DateTime<Utc>,
    /// How far `complete_through` is behind now, in seconds: the projection's lag in time.
    pub watermark_age_seconds: f64,
    pub dead_letters: i64,
}

/// Events past the last position applied are a range scan of the primary key; the holes
/// below it are looked up from the watermark on, which is close behind.
const REPORT: &str = "
    SELECT coalesce(s.applied_events, 0), s.last_position, s.last_applied_at,
           (SELECT count(*) FROM events e WHERE e.global_position > coalesce(s.last_position, 0)),
           (SELECT count(*) FROM events e
              LEFT JOIN projection_streams ps ON ps.projection = $1 AND ps.stream_id = e.stream_id
             WHERE e.global_position > $2 AND e.global_position <= coalesce(s.last_position, 0)
               AND coalesce(ps.stream_version, 0) < e.stream_version),
           (SELECT count(*) FROM dead_letters d WHERE d.projection = $1 AND d.redriven_at IS NULL),
           extract(epoch FROM greatest(clock_timestamp() - $3::timestamptz, '0'::interval))::float8
      FROM (SELECT 1) AS one
      LEFT JOIN projection_status s ON s.projection = $1";

/// Every projection's report, by name. Each watermark is where it could be moved now (so
/// that its age is the truth now and not as of the last batch), without writing it: a
/// dashboard polling this costs reads only.
pub async fn report(pool: &deadpool_postgres::Pool) -> Result<Vec<ProjectionReport>, StoreError> {
    let client = pool.get().await?;
    let mut reports = Vec::with_capacity(ProjectionKind::ALL.len());
    for projection in ProjectionKind::ALL {
        let watermark = watermark::peek(&client, projection.name()).await?;
        // Unnamed, so planned for the watermark it is given.
        let row = client
            .query_one(
                REPORT,
                &[&projection.name(), &watermark.position, &watermark.complete_through],
            )
            .await?;
        reports.push(ProjectionReport {
            projection,
            applied_events: row.try_get(0)?,
            last_position: row.try_get(1)?,
            last_applied_at: row.try_get(2)?,
            lag_events: row.try_get(3)?,
            unapplied_below_highest: row.try_get(4)?,
            watermark_position: watermark.position,
            complete_through: watermark.complete_through,
            watermark_age_seconds: row.try_get(6)?,
            dead_letters: row.try_get(5)?,
        });
    }
    Ok(reports)
}
