//! Settling a point-in-time cut before reading it, so that an as-of answer is repeatable.
//!
//! Positions and append times are taken when a row is inserted, and transactions commit
//! later and in any order. A cut "as of T" (events recorded at or before T) or "at
//! position P" (events at or below P) is therefore only final once no transaction that
//! could still commit an event inside it is running. Such a transaction has already
//! inserted (a transaction that has not inserted yet will take a later time and a higher
//! position than anything visible now), so it holds a transaction id and started at or
//! before the cut's time. Settling waits for exactly those transactions — commands last
//! milliseconds — and a cut older than every running transaction (the usual historical
//! query) does not wait at all.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use crate::error::{StoreError, Unavailable};
use crate::recorded::Cut;

/// How long a read waits for the writers inside its cut before giving up.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// Transactions of other sessions that may still append and began at or before `$1`
/// (the append lock's holders, see `migrations/V017__append_horizon.sql`). An event's
/// append time is never earlier than its transaction's start, and a transaction that takes
/// the lock after this check appends later than the check.
const UNSETTLED: &str = "
    SELECT count(*) FROM ledger_appenders()
     WHERE pid IS DISTINCT FROM pg_backend_pid() AND coalesce(started, 'epoch') <= $1";

const PRESENT: &str = "SELECT least($1::timestamptz, clock_timestamp())";

/// The time a position cut corresponds to: when the event at that position was appended,
/// if it is visible; otherwise (not committed yet, rolled back, or in the future) now.
/// Also the highest position appended so far, which a cut in the future stands for.
const POSITION_TIME: &str = "
    SELECT coalesce((SELECT recorded_at FROM events WHERE global_position = $1), clock_timestamp()),
           coalesce((SELECT max(global_position) FROM events), 0)";

const FRONTIER: &str = "SELECT now, oldest_appender FROM ledger_append_frontier()";

/// Where events not visible yet can still be appended: no earlier than the oldest
/// running appender's start, nor than `now` for transactions that start appending later.
#[derive(Clone, Copy, Debug)]
pub struct AppendFrontier {
    pub now: DateTime<Utc>,
    /// When the oldest transaction that may still append began (`None`: there is none).
    pub oldest_appender: Option<DateTime<Utc>>,
}

impl AppendFrontier {
    /// The earliest append time an event not visible yet can have.
    pub fn earliest_pending(&self) -> DateTime<Utc> {
        self.oldest_appender.map_or(self.now, |oldest| oldest.min(self.now))
    }
}

/// See [`AppendFrontier`]. Read it *before* the events it is used to judge.
pub async fn append_frontier(client: &impl GenericClient) -> Result<AppendFrontier, StoreError> {
    let statement = client.prepare_cached(FRONTIER).await?;
    let row = client.query_one(&statement, &[]).await?;
    Ok(AppendFrontier { now: row.try_get(0)?, oldest_appender: row.try_get(1)? })
}

/// Waits until no running transaction can still add an event inside `cut`, and returns the
/// cut as it can be answered: a time or a position in the future is the present (the
/// current time; the highest position appended).
pub async fn settle(client: &impl GenericClient, cut: Cut) -> Result<Cut, StoreError> {
    let (horizon, settled): (DateTime<Utc>, Cut) = match cut {
        Cut::Latest | Cut::Version(_) => return Ok(cut),
        // A cut in the future is the present: only transactions that began by now count
        // (fixed once, so a steady stream of new commands cannot starve the read).
        Cut::Time(time) => {
            let present: DateTime<Utc> = client.query_one(PRESENT, &[&time]).await?.try_get(0)?;
            (present, Cut::Time(present))
        }
        Cut::Position(position) => {
            let row = client.query_one(POSITION_TIME, &[&position]).await?;
            (row.try_get(0)?, Cut::Position(position.min(row.try_get(1)?)))
        }
        // An event inside both cuts is inside each, so settling either would do: the
        // earlier horizon waits for fewer transactions.
        Cut::Both(position, time) => {
            let present: DateTime<Utc> = client.query_one(PRESENT, &[&time]).await?.try_get(0)?;
            let row = client.query_one(POSITION_TIME, &[&position]).await?;
            let at_position: DateTime<Utc> = row.try_get(0)?;
            let highest: i64 = row.try_get(1)?;
            (present.min(at_position), Cut::Both(position.min(highest), present))
        }
    };
    let unsettled = client.prepare_cached(UNSETTLED).await?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let running: i64 = client.query_one(&unsettled, &[&horizon]).await?.try_get(0)?;
        if running == 0 {
            return Ok(settled);
        }
        if started.elapsed() >= SETTLE_LIMIT {
            return Err(StoreError::Unavailable(Unavailable::Unsettled { running }));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
