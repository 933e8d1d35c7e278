//! How far a projection is complete, so a point-in-time answer from its read model is
//! exactly what a replay of the store up to the cut would give.
//!
//! Workers apply events in partition order, not in global position order, so "applied up
//! to the highest position seen" means nothing. The watermark is the longest prefix of the
//! store, in position order, that is entirely applied — `position` — and the latest append
//! time such that every event appended at or before it is applied — `complete_through`.
//!
//! Holes in the position sequence are rolled-back appends or appends still running; a
//! hole is only stepped over once no transaction that could still fill it is running.
//! `complete_through` stops just before the first event not yet applied and before the
//! start of any running writer (an event not visible yet is appended no earlier), with a
//! millisecond of slack because a position and an append time are read separately as a
//! row is inserted.

use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::GenericClient;
use eventstore::{Cut, StoreError};

/// Rows examined per round; a watermark far behind advances in several rounds.
const ROUND: i64 = 10_000;
const MAX_ROUNDS: usize = 20;
/// Slack between an event's position and its append time (see the module documentation).
const SKEW: Duration = Duration::milliseconds(1);

const READ: &str = "
    SELECT coalesce((SELECT position FROM projection_watermarks WHERE projection = $1), 0),
           coalesce((SELECT complete_through FROM projection_watermarks WHERE projection = $1), '1970-01-01T00:00:00Z')";

/// The events after `$2` in position order, each with whether `$1` has applied it.
const CANDIDATES: &str = "
    SELECT e.global_position, e.recorded_at, coalesce(ps.stream_version, 0) >= e.stream_version
      FROM events e
      LEFT JOIN projection_streams ps ON ps.projection = $1 AND ps.stream_id = e.stream_id
     WHERE e.global_position > $2
     ORDER BY e.global_position
     LIMIT $3";

const STORE: &str = "
    INSERT INTO projection_watermarks (projection, position, complete_through, updated_at)
    VALUES ($1, $2, $3, now())
    ON CONFLICT (projection) DO UPDATE
       SET position = GREATEST(projection_watermarks.position, EXCLUDED.position),
           complete_through = GREATEST(projection_watermarks.complete_through, EXCLUDED.complete_through),
           updated_at = now()
    RETURNING position, complete_through";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermark {
    pub position: i64,
    pub complete_through: DateTime<Utc>,
}

impl Watermark {
    /// Whether every event inside `cut` is applied.
    pub fn covers(&self, cut: Cut) -> bool {
        match cut {
            Cut::Latest | Cut::Version(_) => true,
            Cut::Position(position) => position <= self.position,
            Cut::Time(time) => time <= self.complete_through,
        }
    }
}

pub async fn read(client: &impl GenericClient, projection: &str) -> Result<Watermark, StoreError> {
    let row = client.query_one(READ, &[&projection]).await?;
    Ok(Watermark { position: row.try_get(0)?, complete_through: row.try_get(1)? })
}

/// Moves the watermark as far as the applied events allow, and returns it. Safe to call
/// from anywhere at any time (it only reads committed state and never moves backwards).
pub async fn advance(
    client: &impl GenericClient,
    projection: &str,
) -> Result<Watermark, StoreError> {
    let start = read(client, projection).await?;
    let candidates = client.prepare_cached(CANDIDATES).await?;
    let now: DateTime<Utc> = client.query_one("SELECT clock_timestamp()", &[]).await?.get(0);
    let oldest_writer = eventstore::oldest_running_writer(client).await?;
    let mut position = start.position;
    // Every event appended before this is applied (with `SKEW` of slack).
    let mut frontier = None;
    let mut last_seen = None;
    'rounds: for _ in 0..MAX_ROUNDS {
        let rows = client.query(&candidates, &[&projection, &position, &ROUND]).await?;
        for row in &rows {
            let (next, recorded_at, applied): (i64, DateTime<Utc>, bool) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            // A hole before `next` is a rolled-back append, or one still running, which
            // took its position (and started) before `next` was appended.
            let hole_may_fill =
                next != position + 1 && oldest_writer.is_some_and(|w| w <= recorded_at + SKEW);
            if !applied || hole_may_fill {
                frontier = Some(recorded_at);
                break 'rounds;
            }
            position = next;
            last_seen = Some(recorded_at);
        }
        if (rows.len() as i64) < ROUND {
            // The end of the store: everything visible is applied.
            frontier = Some(now);
            break;
        }
    }
    // Stopped after MAX_ROUNDS: complete up to the last event examined.
    let frontier = frontier.or(last_seen).unwrap_or(start.complete_through);
    let mut complete_through = frontier - SKEW;
    if let Some(writer) = oldest_writer {
        complete_through = complete_through.min(writer - SKEW);
    }
    let row = client.query_one(STORE, &[&projection, &position, &complete_through]).await?;
    Ok(Watermark { position: row.try_get(0)?, complete_through: row.try_get(1)? })
}
