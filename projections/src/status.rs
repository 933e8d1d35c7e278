//! The durable progress of every projection, for `ledger projections status` and the
//! admin endpoint: events applied, the last position applied, how many events were
//! recorded after it (lag), and dead letters waiting.

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct ProjectionReport {
    pub projection: String,
    pub applied_events: i64,
    pub last_position: Option<i64>,
    pub last_applied_at: Option<DateTime<Utc>>,
    /// Events in the store past the last position applied.
    pub lag_events: i64,
    pub dead_letters: i64,
}

const REPORT: &str = "
    SELECT p.projection, coalesce(s.applied_events, 0), s.last_position, s.last_applied_at,
           (SELECT count(*) FROM events e WHERE e.global_position > coalesce(s.last_position, 0)),
           (SELECT count(*) FROM dead_letters d WHERE d.projection = p.projection AND d.redriven_at IS NULL)
      FROM (VALUES ('notifications'), ('payments')) AS p (projection)
      LEFT JOIN projection_status s ON s.projection = p.projection
     ORDER BY p.projection";

pub async fn report(
    pool: &deadpool_postgres::Pool,
) -> Result<Vec<ProjectionReport>, eventstore::StoreError> {
    let client = pool.get().await?;
    let rows = client.query(REPORT, &[]).await?;
    rows.iter()
        .map(|row| {
            Ok(ProjectionReport {
                projection: row.try_get(0)?,
                applied_events: row.try_get(1)?,
                last_position: row.try_get(2)?,
                last_applied_at: row.try_get(3)?,
                lag_events: row.try_get(4)?,
                dead_letters: row.try_get(5)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(eventstore::StoreError::from)
}
