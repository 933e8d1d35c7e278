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
//! [`AppendFrontier`] (an event not visible yet is appended no earlier than the oldest
//! running appender's start, or than the frontier's `now` if its transaction takes the
//! append lock later), with a millisecond of slack because a position and an append time
//! are read separately as a row is inserted. The frontier is read before the events it
//! judges: a hole's appender that was not holding the lock then appends after `now`.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::GenericClient;
use eventstore::position::CommitPosition;
use eventstore::{AppendFrontier, Cut, StoreError};

use crate::positions::Positions;

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
            // Every event inside both is inside each.
            Cut::Both(position, time) => position <= self.position || time <= self.complete_through,
        }
    }
}

pub async fn read(client: &impl GenericClient, projection: &str) -> Result<Watermark, StoreError> {
    let row = client.query_one(READ, &[&projection]).await?;
    Ok(Watermark { position: row.try_get(0)?, complete_through: row.try_get(1)? })
}

/// A walk over the events after the watermark, in position order, as far as they allow.
struct Walk {
    position: i64,
    /// No event not visible yet is appended before this (see the module documentation).
    earliest_pending: DateTime<Utc>,
    /// Every event appended before this is applied (with `SKEW` of slack).
    frontier: Option<DateTime<Utc>>,
    last_seen: Option<DateTime<Utc>>,
}

impl Walk {
    fn new(position: i64, frontier: AppendFrontier) -> Self {
        Self {
            position,
            earliest_pending: frontier.earliest_pending(),
            frontier: None,
            last_seen: None,
        }
    }

    /// Steps onto the next event, `next` appended at `recorded_at`; false where the walk
    /// has to stop.
    fn step(&mut self, next: i64, recorded_at: DateTime<Utc>, applied: bool) -> bool {
        // A hole before `next` is a rolled-back append, or one still running, which took
        // its position (and started) before `next` was appended.
        let hole_may_fill =
            next != self.position + 1 && self.earliest_pending <= recorded_at + SKEW * 2;
        if !applied || hole_may_fill {
            self.frontier = Some(recorded_at);
            return false;
        }
        self.position = next;
        self.last_seen = Some(recorded_at);
        true
    }

    /// Steps onto `next`, the very next position, which is applied: there is no hole to
    /// judge, so the walk goes on. (Its append time is not kept: callers that step this
    /// way end the walk on an event they judge, or at the end of the store.)
    fn step_adjacent(&mut self, next: i64) {
        debug_assert_eq!(next, self.position + 1);
        self.position = next;
    }

    /// The end of the store: everything visible is applied.
    fn reached_end(&mut self) {
        self.frontier = Some(self.earliest_pending);
    }

    /// The position and append time the walk reached from `start`.
    fn reached(&self, start: Watermark) -> (i64, DateTime<Utc>) {
        // Stopped early: complete up to the last event examined.
        let frontier = self.frontier.or(self.last_seen).unwrap_or(start.complete_through);
        (self.position, (frontier - SKEW).min(self.earliest_pending - SKEW * 2))
    }

    async fn store(
        self,
        client: &impl GenericClient,
        projection: &str,
        start: Watermark,
    ) -> Result<Watermark, StoreError> {
        let (position, complete_through) = self.reached(start);
        let row = client.query_one(STORE, &[&projection, &position, &complete_through]).await?;
        Ok(Watermark { position: row.try_get(0)?, complete_through: row.try_get(1)? })
    }
}

/// Moves the watermark as far as the applied events allow, and returns it. Safe to call
/// from anywhere at any time (it only reads committed state and never moves backwards).
pub async fn advance(
    client: &impl GenericClient,
    projection: &str,
) -> Result<Watermark, StoreError> {
    let (start, walk) = walk(client, projection).await?;
    walk.store(client, projection, start).await
}

/// Where [`advance`] would move the watermark now, without moving it: for reports and
/// dashboards, which poll and must not write (the workers and the readers that need it
/// keep the stored watermark current).
pub async fn peek(client: &impl GenericClient, projection: &str) -> Result<Watermark, StoreError> {
    let (start, walk) = walk(client, projection).await?;
    let (position, complete_through) = walk.reached(start);
    Ok(Watermark {
        position: position.max(start.position),
        complete_through: complete_through.max(start.complete_through),
    })
}

async fn walk(
    client: &impl GenericClient,
    projection: &str,
) -> Result<(Watermark, Walk), StoreError> {
    let start = read(client, projection).await?;
    let mut walk = Walk::new(start.position, eventstore::append_frontier(client).await?);
    'rounds: for _ in 0..MAX_ROUNDS {
        // Unnamed, so planned for its parameters each time: a cached generic plan cannot
        // know that the range after the watermark is short, and scanned the whole store.
        let rows = client.query(CANDIDATES, &[&projection, &walk.position, &ROUND]).await?;
        for row in &rows {
            if !walk.step(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?) {
                break 'rounds;
            }
        }
        if (rows.len() as i64) < ROUND {
            walk.reached_end();
            break;
        }
    }
    Ok((start, walk))
}

/// The first visible event after a commit position, in position order.
const FIRST_AFTER: &str = "
    SELECT global_position, recorded_at FROM events
     WHERE (tx_id, global_position) > ($1::bigint::text::xid8, $2)
     ORDER BY global_position LIMIT 1";

/// The append times of the events at some positions.
const TIMES_AT: &str =
    "SELECT global_position, recorded_at FROM events WHERE global_position = ANY($1)";
/// Append times looked up per statement.
const TIMES_CHUNK: usize = 10_000;

/// [`advance`] for a projection that read the store in the gap-safe order up to
/// `read_through` and applied every event it read, at the positions in `applied`. For a
/// rebuild's bulk replay, whose millions of events [`advance`] would look up one by one.
///
/// The walk can only stop on an event after a hole (or on the first event not applied), so
/// only those events' append times are looked up, a chunk at a time.
pub async fn advance_over(
    client: &impl GenericClient,
    projection: &str,
    applied: &Positions,
    read_through: CommitPosition,
) -> Result<Watermark, StoreError> {
    let start = read(client, projection).await?;
    let mut walk = Walk::new(start.position, eventstore::append_frontier(client).await?);
    // Everything visible after `read_through` in the gap-safe order was not read.
    let first_not_applied: Option<(i64, DateTime<Utc>)> = client
        .query_opt(FIRST_AFTER, &[&read_through.tx_id, &read_through.global_position])
        .await?
        .map(|row| Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get(1)?)))
        .transpose()?;
    let stop_at = first_not_applied.map_or(i64::MAX, |(stop, _)| stop);
    let mut times: HashMap<i64, DateTime<Utc>> = HashMap::new();
    let mut stopped = false;
    for position in applied.above(start.position) {
        if position > stop_at {
            break;
        }
        if position == walk.position + 1 {
            walk.step_adjacent(position);
            continue;
        }
        if times.is_empty() {
            times = times_after_holes(client, applied, walk.position, stop_at).await?;
        }
        let recorded_at = times.remove(&position).ok_or_else(|| {
            StoreError::Invariant(format!("event {position} was applied but is not in the store"))
        })?;
        if !walk.step(position, recorded_at, true) {
            stopped = true;
            break;
        }
    }
    match first_not_applied {
        Some((stop, at)) if !stopped => {
            walk.step(stop, at, false);
        }
        None if !stopped => walk.reached_end(),
        _ => {}
    }
    walk.store(client, projection, start).await
}

/// The append times of the next events in `applied` after `from` that follow a hole, up
/// to a chunk of them and below `stop_at`.
async fn times_after_holes(
    client: &impl GenericClient,
    applied: &Positions,
    from: i64,
    stop_at: i64,
) -> Result<HashMap<i64, DateTime<Utc>>, StoreError> {
    let mut previous = from;
    let mut wanted = Vec::new();
    for position in applied.above(from).take_while(|position| *position <= stop_at) {
        if position != previous + 1 {
            wanted.push(position);
            if wanted.len() == TIMES_CHUNK {
                break;
            }
        }
        previous = position;
    }
    let rows = client.query(TIMES_AT, &[&wanted]).await?;
    rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
}
