//! Rebuilding a projection by replaying the event store, with zero downtime.
//!
//! The new generation is built in a schema of its own (`rebuild_<projection>`), beside the
//! live tables, from the store (the source of truth, not Kafka) in the gap-safe commit
//! order, through the projection's own `apply` — the same code as the live worker, run
//! with that schema first on the `search_path`. Queries keep reading the live tables the
//! whole time. When the replay has caught up, one transaction swaps the generations:
//! it stops the live workers for a moment (an advisory lock every batch takes shared),
//! makes sure the new generation has everything the live one applied, moves the live
//! tables out and the new ones in, and carries over the projection's bookkeeping. Readers
//! wait for that transaction for milliseconds and then read the new tables.
//!
//! A rebuild that stops — cancelled, failed, or its process killed — leaves the live
//! generation untouched; the next one starts over. `Target::Cut` builds the projection as
//! of a past point into the schema and keeps it there for investigation, without a swap.
//! Replay never causes outward effects: it writes read-model tables only, and
//! notifications keep the delivery status they had in the live generation.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool, Transaction};
use eventstore::position::{read_committed_after, CommitPosition};
use eventstore::{Cut, StoreError};
use serde::Serialize;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{apply, watermark, ApplyError, ProjectedEvent, Projection};

/// Events read and applied per transaction.
pub const BATCH: i64 = 10_000;

/// The tables besides the read model's own that hold a projection's bookkeeping, keyed by
/// projection name.
const BOOKKEEPING: &[&str] = &["projection_streams", "projection_status", "projection_watermarks"];

/// Every apply takes this shared; the swap takes it exclusively.
pub(crate) const APPLY_LOCK: &str =
    "SELECT pg_advisory_xact_lock_shared(hashtext('ledger-projection:' || $1))";
const SWAP_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('ledger-projection:' || $1))";
/// One rebuild per projection at a time, across processes.
const REBUILD_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('ledger-rebuild:' || $1))";
const REBUILD_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext('ledger-rebuild:' || $1))";

/// What to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The whole history, then swap it in as the live generation.
    Live,
    /// The history up to a cut, kept in the rebuild schema for investigation.
    Cut(Cut),
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("a rebuild of {0} is already running")]
    AlreadyRunning(String),
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RebuildStatus {
    pub projection: String,
    /// `replaying`, `swapping`, `done`, `cancelled` or `failed`.
    pub state: String,
    /// Events in the store when the replay started (it also replays what arrives later).
    pub total: u64,
    pub replayed: u64,
    pub events_per_second: f64,
    pub eta_seconds: Option<f64>,
    /// Where the new generation is built (and kept, for a cut).
    pub schema: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// Shared view of one rebuild's progress.
#[derive(Clone, Debug, Default)]
pub struct RebuildProgress(Arc<Mutex<RebuildStatus>>);

impl RebuildProgress {
    fn lock(&self) -> MutexGuard<'_, RebuildStatus> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn snapshot(&self) -> RebuildStatus {
        self.lock().clone()
    }

    fn update(&self, change: impl FnOnce(&mut RebuildStatus)) {
        change(&mut self.lock());
    }
}

/// The schema a projection's new generation is built in.
pub fn schema_of(projection: &str) -> String {
    format!("rebuild_{projection}")
}

/// Rebuilds `projection` (whose read model lives in `tables`) and reports progress into
/// `progress`; stops early when `cancel` turns true.
pub async fn rebuild<P: Projection>(
    pool: &Pool,
    projection: &P,
    target: Target,
    batch: i64,
    progress: RebuildProgress,
    cancel: watch::Receiver<bool>,
) -> Result<RebuildStatus, RebuildError> {
    let name = projection.name();
    let schema = schema_of(name);
    progress.update(|s| {
        *s = RebuildStatus {
            projection: name.to_owned(),
            state: "replaying".to_owned(),
            schema: schema.clone(),
            started_at: Some(Utc::now()),
            ..RebuildStatus::default()
        }
    });
    // Detached from the pool: if this task is aborted, dropping it closes the connection,
    // which releases the lock (a pooled one would keep it).
    let guard = deadpool_postgres::Object::take(pool.get().await.map_err(StoreError::from)?);
    let locked: bool = guard.query_one(REBUILD_LOCK, &[&name]).await?.get(0);
    if !locked {
        let error = RebuildError::AlreadyRunning(name.to_owned());
        progress.update(|s| {
            s.state = "failed".to_owned();
            s.error = Some(error.to_string());
        });
        return Err(error);
    }
    let outcome = run(pool, projection, target, batch.max(1), &progress, cancel, &schema).await;
    let _ = guard.query_one(REBUILD_UNLOCK, &[&name]).await;
    progress.update(|s| {
        s.finished_at = Some(Utc::now());
        s.eta_seconds = None;
        match &outcome {
            Ok(()) => s.state = "done".to_owned(),
            Err(RebuildError::Cancelled) => s.state = "cancelled".to_owned(),
            Err(error) => {
                s.state = "failed".to_owned();
                s.error = Some(error.to_string());
            }
        }
    });
    if outcome.is_err() && target == Target::Live {
        // Leave nothing half-built behind; the live generation was never touched.
        if let Ok(client) = pool.get().await {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
        }
    }
    outcome.map(|()| progress.snapshot())
}

async fn run<P: Projection>(
    pool: &Pool,
    projection: &P,
    target: Target,
    batch_size: i64,
    progress: &RebuildProgress,
    cancel: watch::Receiver<bool>,
    schema: &str,
) -> Result<(), RebuildError> {
    let name = projection.name();
    let mut writer = pool.get().await.map_err(StoreError::from)?;
    create_generation(&writer, projection, schema).await?;
    let total: i64 = writer.query_one("SELECT count(*) FROM events", &[]).await?.get(0);
    progress.update(|s| s.total = total.unsigned_abs());

    let reader = pool.get().await.map_err(StoreError::from)?;
    let started = Instant::now();
    let mut after = CommitPosition { tx_id: 0, global_position: 0 };
    let mut replayed: u64 = 0;
    let mut batches: u64 = 0;
    loop {
        if *cancel.borrow() {
            return Err(RebuildError::Cancelled);
        }
        let batch = read_committed_after(&reader, after, batch_size).await?;
        let Some(last) = batch.last() else { break };
        after = last.commit;
        let events = batch
            .iter()
            .filter(|event| inside(target, event.commit.global_position, event.recorded_at))
            .map(|event| {
                let payload: serde_json::Value = serde_json::from_str(&event.payload)
                    .map_err(|e| ApplyError::Undecodable(e.to_string()))?;
                let decoded =
                    eventstore::schema::decode(&event.event_type, event.event_version, &payload)
                        .map_err(|e| ApplyError::Undecodable(e.to_string()))?;
                Ok(ProjectedEvent {
                    event_id: event.event_id,
                    stream_id: event.stream_id,
                    stream_version: event.stream_version,
                    position: event.commit.global_position,
                    recorded_at: event.recorded_at,
                    event: decoded,
                })
            })
            .collect::<Result<Vec<_>, ApplyError>>()?;
        let transaction = in_generation(&mut writer, schema).await?;
        apply::apply(&transaction, projection, &events).await?;
        watermark::advance(&transaction, name).await?;
        transaction.commit().await?;
        replayed += batch.len() as u64;
        batches += 1;
        if batches.is_power_of_two() {
            // The new tables start empty: without fresh statistics the planner keeps
            // choosing plans made for empty tables (nested loops over sequential scans)
            // while they grow by millions of rows.
            analyze(&writer, projection, schema).await?;
        }
        let rate = replayed as f64 / started.elapsed().as_secs_f64().max(1e-6);
        progress.update(|s| {
            s.replayed = replayed;
            s.total = s.total.max(replayed);
            s.events_per_second = rate;
            s.eta_seconds = Some((s.total - replayed) as f64 / rate.max(1e-6));
        });
        if (batch.len() as i64) < batch_size {
            break;
        }
    }
    if target == Target::Live {
        progress.update(|s| s.state = "swapping".to_owned());
        swap(&mut writer, projection, schema).await?;
    }
    Ok(())
}

async fn analyze<P: Projection>(
    client: &deadpool_postgres::Object,
    projection: &P,
    schema: &str,
) -> Result<(), RebuildError> {
    let tables: Vec<String> =
        projection.tables().iter().chain(BOOKKEEPING).map(|t| format!("{schema}.{t}")).collect();
    client.batch_execute(&format!("ANALYZE {}", tables.join(", "))).await?;
    Ok(())
}

fn inside(target: Target, position: i64, recorded_at: DateTime<Utc>) -> bool {
    match target {
        Target::Live | Target::Cut(Cut::Latest | Cut::Version(_)) => true,
        Target::Cut(Cut::Position(cut)) => position <= cut,
        Target::Cut(Cut::Time(cut)) => recorded_at <= cut,
    }
}

/// A transaction that reads and writes the new generation (and everything else, such as
/// the events, in `public`).
async fn in_generation<'a>(
    client: &'a mut deadpool_postgres::Object,
    schema: &str,
) -> Result<Transaction<'a>, RebuildError> {
    let transaction = client.transaction().await?;
    transaction.batch_execute(&format!("SET LOCAL search_path = {schema}, public")).await?;
    Ok(transaction)
}

/// An empty copy of the live tables (columns, defaults, generated columns, indexes,
/// checks; foreign keys re-pointed at the copies), and of the bookkeeping.
async fn create_generation<P: Projection>(
    client: &deadpool_postgres::Object,
    projection: &P,
    schema: &str,
) -> Result<(), RebuildError> {
    let mut ddl = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};");
    for table in projection.tables().iter().chain(BOOKKEEPING) {
        ddl.push_str(&format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL);"
        ));
    }
    client.batch_execute(&ddl).await?;
    for table in projection.tables() {
        let foreign_keys = client
            .query(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint
                  WHERE conrelid = ('public.' || $1)::regclass AND contype = 'f'",
                &[table],
            )
            .await?;
        for key in foreign_keys {
            let definition: String = key.get(0);
            // Printed with `public` on the search path, the referenced table is unqualified.
            client
                .batch_execute(&format!(
                    "SET search_path = {schema}, public; ALTER TABLE {schema}.{table} ADD {definition}; RESET search_path"
                ))
                .await?;
        }
    }
    Ok(())
}

/// Makes the new generation the live one, in one transaction.
async fn swap<P: Projection>(
    client: &mut deadpool_postgres::Object,
    projection: &P,
    schema: &str,
) -> Result<(), RebuildError> {
    let name = projection.name();
    let retired = format!("retired_{name}");
    let transaction = in_generation(client, schema).await?;
    // No live batch runs from here to the commit.
    transaction.execute(SWAP_LOCK, &[&name]).await?;
    let tables = projection.tables();
    let live: Vec<String> = tables.iter().map(|t| format!("public.{t}")).collect();
    transaction
        .batch_execute(&format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", live.join(", ")))
        .await?;

    // Everything the live generation applied must be in the new one: apply what it lacks
    // from the store (events the live workers applied after the replay read its last batch).
    let behind = transaction
        .query(
            &format!(
                "SELECT l.stream_id, l.stream_version FROM public.projection_streams l
                  LEFT JOIN {schema}.projection_streams r
                         ON r.projection = l.projection AND r.stream_id = l.stream_id
                  WHERE l.projection = $1 AND l.stream_version > coalesce(r.stream_version, 0)"
            ),
            &[&name],
        )
        .await?;
    for row in behind {
        let stream_id: Uuid = row.get(0);
        let version = u32::try_from(row.get::<_, i32>(1)).unwrap_or_default();
        let missing = eventstore::load_stream(&transaction, stream_id, Cut::Version(version))
            .await?
            .into_iter()
            .map(|recorded| {
                Ok(ProjectedEvent {
                    event_id: recorded.event_id,
                    stream_id: recorded.stream_id,
                    stream_version: recorded.stream_version,
                    position: recorded.global_position,
                    recorded_at: recorded.recorded_at,
                    event: recorded.decode()?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        apply::apply(&transaction, projection, &missing).await?;
    }
    watermark::advance(&transaction, name).await?;

    let mut ddl = format!("DROP SCHEMA IF EXISTS {retired} CASCADE; CREATE SCHEMA {retired};");
    for table in tables {
        ddl.push_str(&format!("ALTER TABLE public.{table} SET SCHEMA {retired};"));
    }
    for table in tables {
        ddl.push_str(&format!("ALTER TABLE {schema}.{table} SET SCHEMA public;"));
    }
    transaction.batch_execute(&ddl).await?;
    for table in tables {
        keep_index_names(&transaction, &retired, table).await?;
    }
    for table in BOOKKEEPING {
        transaction
            .execute(&format!("DELETE FROM public.{table} WHERE projection = $1"), &[&name])
            .await?;
        transaction
            .execute(
                &format!(
                    "INSERT INTO public.{table} SELECT * FROM {schema}.{table} WHERE projection = $1"
                ),
                &[&name],
            )
            .await?;
    }
    projection.carry_over(&transaction, &retired).await?;
    transaction.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await?;
    transaction.commit().await?;
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {retired} CASCADE")).await?;
    Ok(())
}

/// Gives the new table's indexes the names the live ones had (migrations refer to them).
async fn keep_index_names(
    transaction: &Transaction<'_>,
    retired: &str,
    table: &str,
) -> Result<(), RebuildError> {
    const INDEXES: &str = "
        SELECT c.relname, regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING ', '')
          FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = $1::text::regclass";
    let old = transaction.query(INDEXES, &[&format!("{retired}.{table}")]).await?;
    let new = transaction.query(INDEXES, &[&format!("public.{table}")]).await?;
    let mut renames = String::new();
    for (old_name, definition) in old.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
    {
        let Some(new_name) =
            new.iter().find(|r| r.get::<_, String>(1) == definition).map(|r| r.get::<_, String>(0))
        else {
            continue;
        };
        if new_name != old_name {
            // Constraint-backed indexes rename through their constraint.
            renames.push_str(&format!("ALTER INDEX public.{new_name} RENAME TO {old_name};"));
        }
    }
    if !renames.is_empty() {
        transaction.batch_execute(&renames).await?;
    }
    Ok(())
}

/// Whether `projection`'s rebuild schema holds the same rows as its live tables, table by
/// table (for tests and investigation).
pub async fn generation_equals_live<P: Projection>(
    client: &impl GenericClient,
    projection: &P,
) -> Result<bool, RebuildError> {
    let schema = schema_of(projection.name());
    for table in projection.tables() {
        let differing: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM ((SELECT * FROM public.{table} EXCEPT ALL SELECT * FROM {schema}.{table})
                      UNION ALL (SELECT * FROM {schema}.{table} EXCEPT ALL SELECT * FROM public.{table})) d"
                ),
                &[],
            )
            .await?
            .get(0);
        if differing != 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A rebuild running in the background of this process.
pub struct RunningRebuild {
    pub progress: RebuildProgress,
    pub cancel: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<Result<RebuildStatus, RebuildError>>,
}

/// The projections by name, for callers that choose one at run time.
pub const PROJECTIONS: &[&str] = &[crate::payments::NAME, crate::notifications::NAME];

/// Starts rebuilding the projection called `name` in the background; `None` if there is
/// no such projection.
pub fn start(pool: &Pool, name: &str, target: Target) -> Option<RunningRebuild> {
    start_with_batch(pool, name, target, BATCH)
}

/// [`start`] with `batch` events per transaction.
pub fn start_with_batch(
    pool: &Pool,
    name: &str,
    target: Target,
    batch: i64,
) -> Option<RunningRebuild> {
    let progress = RebuildProgress::default();
    let (cancel, cancelled) = watch::channel(false);
    let (pool, report) = (pool.clone(), progress.clone());
    let task = match name {
        crate::payments::NAME => tokio::spawn(async move {
            rebuild(&pool, &crate::payments::Payments, target, batch, report, cancelled).await
        }),
        crate::notifications::NAME => tokio::spawn(async move {
            rebuild(&pool, &crate::notifications::Notifications, target, batch, report, cancelled)
                .await
        }),
        _ => return None,
    };
    Some(RunningRebuild { progress, cancel, task })
}
