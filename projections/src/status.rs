//! The durable progress of every projection, for `ledger projections status` and the
//! admin endpoint: events applied, the last position applied, how many events were
//! recorded after it (lag), and dead letters waiting.

use chrono::{DateTime, Utc};
use eventstore::StoreError;
use serde::Serialize;

use crate::kind::ProjectionKind;

#[derive(Clone, Debug, Serialize)]
pub struct ProjectionReport {
    pub projection: ProjectionKind,
    pub applied_events: i64,
    pub last_position: Option<i64>,
    pub last_applied_at: Option<DateTime<Utc>>,
    /// Events in the store past the last position applied.
    pub lag_events: i64,
    pub dead_letters: i64,
}

const REPORT: &str = "
    SELECT coalesce(s.applied_events, 0), s.last_position, s.last_applied_at,
           (SELECT count(*) FROM events e WHERE e.global_position > coalesce(s.last_position, 0)),
           (SELECT count(*) FROM dead_letters d WHERE d.projection = $1 AND d.redriven_at IS NULL)
      FROM (SELECT 1) AS one
      LEFT JOIN projection_status s ON s.projection = $1";

/// Every projection's report, by name.
pub async fn report(pool: &deadpool_postgres::Pool) -> Result<Vec<ProjectionReport>, StoreError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(REPORT).await?;
    let mut reports = Vec::with_capacity(ProjectionKind::ALL.len());
    for projection in ProjectionKind::ALL {
        let row = client.query_one(&statement, &[&projection.name()]).await?;
        reports.push(ProjectionReport {
            projection,
            applied_events: row.try_get(0)?,
            last_position: row.try_get(1)?,
            last_applied_at: row.try_get(2)?,
            lag_events: row.try_get(3)?,
            dead_letters: row.try_get(4)?,
        });
    }
    Ok(reports)
}
