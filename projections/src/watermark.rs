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

use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::GenericClient;
use eventstore::position::CommitPosition;
use eventstore::{AppendFrontier, Cut, StoreError};

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

    /// The end of the store: everything visible is applied.
    fn reached_end(&mut self) {
        self.frontier = Some(self.earliest_pending);
    }

    async fn store(
        self,
        client: &impl GenericClient,
        projection: &str,
        start: Watermark,
    ) -> Result<Watermark, StoreError> {
        // Stopped early: complete up to the last event examined.
        let frontier = self.frontier.or(self.last_seen).unwrap_or(start.complete_through);
        let complete_through = (frontier - SKEW).min(self.earliest_pending - SKEW * 2);
        let row =
            client.query_one(STORE, &[&projection, &self.position, &complete_through]).await?;
        Ok(Watermark { position: row.try_get(0)?, complete_through: row.try_get(1)? })
    }
}

/// Moves the watermark as far as the applied events allow, and returns it. Safe to call
/// from anywhere at any time (it only reads committed state and never moves backwards).
pub async fn advance(
    client: &impl GenericClient,
    projection: &str,
) -> Result<Watermark, StoreError> {
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
    walk.store(client, projection, start).await
}

/// The first visible event after a commit position, in position order.
const FIRST_AFTER: &str = "
    SELECT global_position, recorded_at FROM events
     WHERE (tx_id, global_position) > ($1::bigint::text::xid8, $2)
     ORDER BY global_position LIMIT 1";

/// [`advance`] for a projection that read the store in the gap-safe order up to
/// `read_through` and applied every event it read: `applied` holds their positions and
/// append times. For a rebuild's bulk replay, whose millions of events [`advance`] would
/// look up one by one.
pub async fn advance_over(
    client: &impl GenericClient,
    projection: &str,
    mut applied: Vec<(i64, DateTime<Utc>)>,
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
    applied.sort_unstable_by_key(|(position, _)| *position);
    let after = applied.partition_point(|(position, _)| *position <= start.position);
    let mut events = applied[after..].iter().copied().peekable();
    let stopped = loop {
        let (next, recorded_at, is_applied) = match (events.peek().copied(), first_not_applied) {
            (Some((position, _)), Some((stop, at))) if stop < position => (stop, at, false),
            (Some((position, at)), _) => {
                events.next();
                (position, at, true)
            }
            (None, Some((stop, at))) => (stop, at, false),
            (None, None) => break false,
        };
        if !walk.step(next, recorded_at, is_applied) {
            break true;
        }
    };
    if !stopped {
        walk.reached_end();
    }
    walk.store(client, projection, start).await
}
