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

/// Transactions of other sessions in this database that have written something and began
/// at or before `$1`. (The events' append time is never earlier than their transaction's
/// start.)
const UNSETTLED: &str = "
    SELECT count(*) FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid()
       AND backend_xid IS NOT NULL AND xact_start <= $1";

const PRESENT: &str = "SELECT least($1::timestamptz, clock_timestamp())";

/// The time a position cut corresponds to: when the event at that position was appended,
/// if it is visible; otherwise (not committed yet, rolled back, or in the future) now.
/// Also the highest position appended so far, which a cut in the future stands for.
const POSITION_TIME: &str = "
    SELECT coalesce((SELECT recorded_at FROM events WHERE global_position = $1), clock_timestamp()),
           coalesce((SELECT max(global_position) FROM events), 0)";

/// The earliest start of a transaction that is still running and has written something
/// (`None` if there is none): events not visible yet will be appended no earlier.
const OLDEST_RUNNING_WRITER: &str = "
    SELECT min(xact_start) FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL";

/// See [`OLDEST_RUNNING_WRITER`].
pub async fn oldest_running_writer(
    client: &impl GenericClient,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let statement = client.prepare_cached(OLDEST_RUNNING_WRITER).await?;
    Ok(client.query_one(&statement, &[]).await?.try_get(0)?)
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
