//! Back-fill for a new consumer: re-sends a range of history to a channel of its own, in
//! the gap-safe order, with the normal envelope, without touching the live relay.
//!
//! The range is fixed when it starts: the events with a position in `from..=to` whose
//! transactions lie below the append horizon at that moment (so no event of the range
//! can still appear behind the cursor). What is appended afterwards is the live relay's
//! to publish; a consumer that reads the back-fill and then the live channel drops the
//! overlap as duplicates, like any redelivery.
//!
//! The cursor is in memory only: the relay's checkpoint row is never read or written. A
//! broker failure is retried from the last acknowledged batch (duplicates, never loss) a
//! bounded number of times, then reported.

use std::time::Duration;

use eventstore::position::{append_horizon, read_committed_after, CommitPosition, ORDERED_READS};
use eventstore::StoreError;

use crate::envelope;
use crate::error::BusError;
use crate::publish::Publisher;

/// Which events to re-send: positions `from..=to` (`to`: none, up to the horizon now).
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub from: i64,
    pub to: Option<i64>,
}

/// How far a back-fill got, for its progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Events of the range when it started.
    pub total: u64,
    /// Events the broker acknowledged.
    pub published: u64,
    /// The position of the last one.
    pub position: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RepublishError {
    #[error("reading the store")]
    Store(#[from] StoreError),
    #[error("reading the store")]
    Query(#[from] tokio_postgres::Error),
    #[error("encoding an envelope")]
    Encode(#[from] serde_json::Error),
    #[error("the broker failed {attempts} times in a row")]
    Broker {
        attempts: u32,
        #[source]
        last: BusError,
    },
}

/// Consecutive broker failures a back-fill waits out before it gives up.
const MAX_ATTEMPTS: u32 = 8;

/// The first and last transaction holding events of the range, below the horizon, and
/// how many events it has. In a statement after the horizon's (the rule of
/// `eventstore::position`).
const BOUNDS: &str = "
    SELECT min(tx_id)::text::bigint, max(tx_id)::text::bigint, count(*)
      FROM events
     WHERE global_position BETWEEN $1 AND $2
       AND tx_id < $3::bigint::text::xid8";

/// Re-sends `range` through `publisher` in batches of `batch_size`, calling `progress`
/// after each acknowledged batch; returns the final progress.
pub async fn republish<P: Publisher>(
    client: &tokio_postgres::Client,
    publisher: &mut P,
    range: Range,
    batch_size: i64,
    mut progress: impl FnMut(Progress),
) -> Result<Progress, RepublishError> {
    client.batch_execute(ORDERED_READS).await?;
    let horizon = append_horizon(client).await?;
    let to = range.to.unwrap_or(i64::MAX);
    let row = client.query_one(BOUNDS, &[&range.from, &to, &horizon]).await?;
    let (first_tx, last_tx): (Option<i64>, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
    let total = u64::try_from(row.try_get::<_, i64>(2)?).unwrap_or(0);
    let mut done = Progress { total, ..Progress::default() };
    progress(done);
    let (Some(first_tx), Some(last_tx)) = (first_tx, last_tx) else {
        return Ok(done);
    };
    prepare(publisher).await?;
    // Just before the first transaction of the range: everything of it comes next.
    let mut cursor = CommitPosition { tx_id: first_tx, global_position: i64::MIN };
    let mut failures = 0;
    loop {
        let batch = read_committed_after(client, cursor, batch_size).await?;
        let Some(last) = batch.last().map(|event| event.commit) else { break };
        // Past the range, or nothing more below the horizon (which only moves on).
        let finished = last.tx_id > last_tx || (batch.len() as i64) < batch_size;
        let events: Vec<_> = batch
            .iter()
            .filter(|event| event.commit.tx_id <= last_tx)
            .filter(|event| (range.from..=to).contains(&event.commit.global_position))
            .collect();
        let messages = events
            .iter()
            .map(|event| envelope::encode(&event.borrow()))
            .collect::<Result<Vec<_>, _>>()?;
        let count = messages.len() as u64;
        if let Err(error) = publisher.publish(messages).await {
            failures += 1;
            if failures >= MAX_ATTEMPTS {
                return Err(RepublishError::Broker { attempts: failures, last: error });
            }
            tracing::warn!(error = %error.chain(), attempt = failures, "republishing a batch failed; retrying it");
            tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(failures.min(5))).await;
            // Whatever was queued settles before the batch goes again.
            let _ = publisher.reset().await;
            prepare(publisher).await?;
            continue;
        }
        failures = 0;
        cursor = last;
        done.published += count;
        if let Some(event) = events.last() {
            done.position = Some(event.commit.global_position);
        }
        progress(done);
        if finished {
            break;
        }
    }
    Ok(done)
}

async fn prepare<P: Publisher>(publisher: &mut P) -> Result<(), RepublishError> {
    let mut attempts = 0;
    loop {
        match publisher.prepare().await {
            Ok(()) => return Ok(()),
            Err(error) => {
                attempts += 1;
                if attempts >= MAX_ATTEMPTS {
                    return Err(RepublishError::Broker { attempts, last: error });
                }
                tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(attempts.min(5))).await;
            }
        }
    }
}
