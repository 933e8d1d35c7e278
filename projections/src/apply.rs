//! Exactly-once application with self-healing, for any projection, a batch at a time.
//!
//! For a batch: one query reads (and locks) the last applied version of every order in
//! it; events at or below it are duplicates and dropped; an event that skips ahead has its
//! missing predecessors read from the event store and put before it; the projection then
//! applies what is left in one go, and the new versions are written back in one statement,
//! all in the caller's transaction.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use eventstore::{stream_version, Cut};
use uuid::Uuid;

use crate::error::ApplyError;
use crate::event::ProjectedEvent;
use crate::projection::execute;
use crate::projection::Projection;
use crate::table::{insert, table};

/// Every apply takes the projection's apply lock shared (see [`apply`]). Whoever must not run beside the consumers' batches
/// takes it exclusively, so that it waits for running batches and holds new ones back: a
/// rebuild's swap, and the catch-up from the store (which could otherwise apply the first
/// event of a stream at the same time as a consumer).
pub(crate) const APPLY_LOCK_EXCLUSIVE: &str =
    "SELECT pg_advisory_xact_lock(hashtext('ledger-projection:' || $1))";
const LAST_VERSIONS: &str = "
    SELECT stream_id, stream_version FROM projection_streams
     WHERE projection = $1 AND stream_id = ANY($2)
     ORDER BY stream_id
       FOR UPDATE";
/// Also tells waiting readers in other processes, when the batch commits (see
/// [`crate::applied`]): the notification rides on this statement to save a round trip.
const RECORD_PROGRESS: &str = "
    INSERT INTO projection_status (projection, applied_events, last_position, last_applied_at, updated_at)
    SELECT $1::text, $2::bigint, $3::bigint, now(), now()
      FROM (SELECT pg_notify('ledger_projection_applied', $1::text || ':' || $4::text)) AS notified
    ON CONFLICT (projection) DO UPDATE
       SET applied_events = projection_status.applied_events + EXCLUDED.applied_events,
           last_position = GREATEST(projection_status.last_position, EXCLUDED.last_position),
           last_applied_at = now(), updated_at = now()";
const APPLIED_VERSION: &str =
    "SELECT stream_version FROM projection_streams WHERE projection = $1 AND stream_id = $2";

table! {
    /// The last version of a stream a projection applied (`projection_streams`).
    AppliedRow in "projection_streams"
    on_conflict "ON CONFLICT (projection, stream_id) DO UPDATE SET stream_version = EXCLUDED.stream_version" {
        projection: &'static str => TEXT,
        stream_id: Uuid => UUID,
        stream_version: i32 => INT4,
    }
}

/// Whether a batch's commit waits for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// It does: a rebuild's swap, a re-drive.
    Durable,
    /// It does not: the consumers' batches and the catch-up's. Nothing is lost to a
    /// database crash: a batch lost with it is applied again from the store by the catch-up
    /// (its messages may have been acknowledged already), and one redelivered is dropped as
    /// a duplicate.
    Lazy,
}

/// What a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Events applied, including healed ones.
    pub applied: u64,
    /// Events dropped because they were applied before.
    pub duplicates: u64,
    /// Missing events read from the store and applied.
    pub healed: u64,
    pub last_position: Option<i64>,
}

impl Outcome {
    /// Adds what another batch did.
    pub fn add(&mut self, other: Outcome) {
        self.applied += other.applied;
        self.duplicates += other.duplicates;
        self.healed += other.healed;
        self.last_position = self.last_position.max(other.last_position);
    }
}

/// Applies `events` (in arrival order) through `projection`, each exactly once. `origin`
/// names the [`crate::AppliedSignal`] that wakes this process's readers (its batches'
/// notifications are then ignored here), or is empty.
pub async fn apply<P: Projection>(
    transaction: &Transaction<'_>,
    projection: &P,
    events: &[ProjectedEvent],
    durability: Durability,
    origin: &str,
) -> Result<Outcome, ApplyError> {
    let name = projection.name();
    // The batch statements join arrays to read-model tables that grow from empty: a plan
    // cached while they were small (nested loops over the arrays, sequential scans) would
    // stay in use as they grow to millions of rows, so each batch is planned afresh. One
    // round trip with the lock (the name is the projection's own constant).
    let lazy = match durability {
        Durability::Durable => "",
        Durability::Lazy => "SET LOCAL synchronous_commit = off;",
    };
    transaction
        .batch_execute(&format!(
            "SET LOCAL plan_cache_mode = force_custom_plan; {lazy}
             SELECT pg_advisory_xact_lock_shared(hashtext('ledger-projection:{name}'))"
        ))
        .await?;
    let mut streams: Vec<Uuid> = events.iter().map(|e| e.stream_id).collect();
    streams.sort_unstable();
    streams.dedup();
    let statement = transaction.prepare_cached(LAST_VERSIONS).await?;
    let mut last: HashMap<Uuid, u32> = transaction
        .query(&statement, &[&name, &streams])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, stream_version(row, 1)?)))
        .collect::<Result<_, ApplyError>>()?;

    let mut outcome = Outcome::default();
    let mut to_apply: Vec<ProjectedEvent> = Vec::with_capacity(events.len());
    for event in events {
        let applied = last.get(&event.stream_id).copied().unwrap_or(0);
        if event.stream_version <= applied {
            outcome.duplicates += 1;
            continue;
        }
        if event.stream_version > applied + 1 {
            let missing = eventstore::load_stream(
                transaction,
                event.stream_id,
                Cut::Version(event.stream_version - 1),
            )
            .await?;
            for recorded in missing.into_iter().filter(|e| e.stream_version > applied) {
                to_apply.push(ProjectedEvent::from_recorded(&recorded)?);
                outcome.healed += 1;
            }
            tracing::info!(projection = name, stream_id = %event.stream_id, from = applied + 1, to = event.stream_version - 1, "applying missing events from the store");
        }
        last.insert(event.stream_id, event.stream_version);
        to_apply.push(event.clone());
    }
    if to_apply.is_empty() {
        return Ok(outcome);
    }

    let mut versions: HashMap<Uuid, u32> = HashMap::new();
    for event in &to_apply {
        versions.insert(event.stream_id, event.stream_version);
    }
    let applied = versions
        .into_iter()
        .map(|(stream_id, version)| {
            Ok(AppliedRow {
                projection: name,
                stream_id,
                stream_version: eventstore::to_stored_version(version)?,
            })
        })
        .collect::<Result<Vec<_>, ApplyError>>()?;
    outcome.applied = to_apply.len() as u64;
    outcome.last_position = to_apply.iter().map(|e| e.position).max();
    let count = i64::try_from(outcome.applied).unwrap_or(i64::MAX);
    // Polled together, the statements are pipelined on the connection: the bookkeeping
    // travels with the projection's first statement instead of after its last.
    let progress: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&name, &count, &outcome.last_position, &origin];
    tokio::try_join!(projection.apply(transaction, &to_apply), async {
        tokio::try_join!(
            insert(transaction, &applied),
            execute(transaction, RECORD_PROGRESS, &progress),
        )
        .map_err(ApplyError::from)
    })?;
    Ok(outcome)
}

/// The version of `stream_id` the projection has applied, for read-your-writes.
pub async fn applied_version(
    client: &impl deadpool_postgres::GenericClient,
    projection: &str,
    stream_id: Uuid,
) -> Result<u32, ApplyError> {
    let statement = client.prepare_cached(APPLIED_VERSION).await?;
    let row = client.query_opt(&statement, &[&projection, &stream_id]).await?;
    Ok(row.map(|row| stream_version(&row, 0)).transpose()?.unwrap_or(0))
}
