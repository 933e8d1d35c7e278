//! The relay's durable state, read from the database by any process: its checkpoint, the
//! backlog behind it, and the age of the oldest transaction that may still append (which
//! holds the gap-safe horizon back), for `/v1/admin/relay`, `ledger relay status` and metrics.

use chrono::{DateTime, Utc};
use eventstore::position::CommitPosition;
use eventstore::StoreError;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct RelayReport {
    pub name: String,
    pub checkpoint: Option<CommitPosition>,
    pub published_events: i64,
    pub last_published_at: Option<DateTime<Utc>>,
    /// Events committed after the checkpoint: not yet published.
    pub backlog: i64,
    /// How long ago the next event to publish was appended (0 when there is none): how
    /// far behind the store the bus is, in time.
    pub lag_seconds: f64,
    /// Age of the oldest transaction holding the append lock; while it runs, nothing
    /// committed after it can be published (the gap-safe horizon). Transactions that
    /// cannot append events do not count.
    pub oldest_open_transaction_seconds: Option<f64>,
}

/// Both event subqueries are range scans of the commit-order index from the checkpoint
/// (`(0, 0)` before the first publish).
const REPORT: &str = "
    WITH checkpoint AS (
        SELECT coalesce(c.tx_id, '0'::xid8) AS tx_id, coalesce(c.global_position, 0) AS global_position,
               c.tx_id IS NOT NULL AS saved, c.published_events, c.last_published_at
          FROM (SELECT 1) AS one
          LEFT JOIN relay_checkpoints c ON c.name = $1)
    SELECT CASE WHEN saved THEN tx_id::text::bigint END, CASE WHEN saved THEN global_position END,
           published_events, last_published_at,
           (SELECT count(*) FROM events e
             WHERE (e.tx_id, e.global_position) > (checkpoint.tx_id, checkpoint.global_position)),
           (SELECT extract(epoch FROM now() - min(coalesce(started, 'epoch')))::float8
              FROM ledger_appenders()),
           coalesce((SELECT extract(epoch FROM greatest(now() - e.recorded_at, '0'::interval))::float8
                       FROM events e
                      WHERE (e.tx_id, e.global_position) > (checkpoint.tx_id, checkpoint.global_position)
                      ORDER BY e.tx_id, e.global_position
                      LIMIT 1), 0)
      FROM checkpoint";

pub async fn relay_report(pool: &eventstore::Pool, name: &str) -> Result<RelayReport, StoreError> {
    let client = pool.get().await?;
    let row = client.query_one(REPORT, &[&name]).await?;
    let tx_id: Option<i64> = row.try_get(0)?;
    let global_position: Option<i64> = row.try_get(1)?;
    Ok(RelayReport {
        name: name.to_owned(),
        checkpoint: tx_id
            .zip(global_position)
            .map(|(tx_id, global_position)| CommitPosition { tx_id, global_position }),
        published_events: row.try_get::<_, Option<i64>>(2)?.unwrap_or(0),
        last_published_at: row.try_get(3)?,
        backlog: row.try_get(4)?,
        oldest_open_transaction_seconds: row.try_get(5)?,
        lag_seconds: row.try_get(6)?,
    })
}
