//! Rebuilding a projection by replaying the event store, with zero downtime.
//!
//! The new generation is built in a schema of its own (`rebuild_<projection>`), beside the
//! live tables, from the store (the source of truth, not Kafka) in the gap-safe commit
//! order. Queries keep reading the live tables the whole time. It is built in two phases:
//!
//! 1. **Bulk**: everything committed when the replay starts is folded in memory by the
//!    projection's [`Replay`] (a reader task reads and decodes a couple of batches ahead)
//!    and copied into tables without indexes; then the keys and indexes are built, each
//!    in one sort, the tables analysed (and vacuumed where index-only scans need it), and
//!    the generation's watermark is brought up to date. Orders quiet for a while are
//!    written out and forgotten as the fold goes, so its memory is bounded (`streams`);
//!    the few that come back are applied through `apply` once the indexes exist.
//! 2. **Incremental**: what was committed since is applied through the projection's own
//!    `apply`, the live workers' code, run with the schema first on the `search_path`.
//!
//! When the replay has caught up, one transaction swaps the generations: it stops the live
//! workers for a moment (an advisory lock every batch takes shared), applies the few
//! events committed since the catch-up, so that the new generation has everything the
//! live one applied, moves the live tables out and the new ones in (the indexes have the
//! live names already), and carries over the projection's bookkeeping. Nothing in it
//! grows with the history, so readers wait for it for milliseconds and then read the new
//! tables.
//!
//! A rebuild that stops — cancelled, failed, or its process killed — leaves the live
//! generation untouched; the next one starts over. `Target::Cut` builds the projection as
//! of a past point into the schema and keeps it there for investigation, without a swap.
//! Replay never causes outward effects: it writes read-model tables only. (What the events
//! do not determine, such as whether a notification was delivered, is kept outside them.)

mod error;
mod generation;
mod progress;
mod read_ahead;
mod revived;
mod streams;
mod swap;
mod tail;
mod target;
mod writer;

use std::time::Instant;

use chrono::Utc;
use deadpool_postgres::{GenericClient, Pool};
use eventstore::position::CommitPosition;
use eventstore::StoreError;
use tokio_util::sync::CancellationToken;

use crate::error::ApplyError;
use crate::kind::ProjectionKind;
use crate::projection::Projection;
use crate::replay::Replay;
use crate::watermark;
use generation::{create_generation, in_generation, index_generation, BULK_COMMITS, NO_TIMEOUT};
use read_ahead::read_ahead;
use revived::apply_revived;
use streams::{Fold, Streams};
use swap::swap;
use tail::apply_next;
use writer::Writing;

pub use error::RebuildError;
pub use generation::{generation_equals_live, schema_of};
pub use progress::{PhaseTime, RebuildPhase, RebuildProgress, RebuildStatus};
pub use read_ahead::READ_CHUNK;
pub use target::Target;

/// Events read and applied per transaction.
pub const BATCH: i64 = 10_000;

/// How many events of history an order stays in the bulk replay's memory after its last
/// one (see `streams`). On the `rebuild` bench's history, where orders are busy over a few
/// tens of thousands of events and none is revived, a rebuild of 10 million events peaked
/// at 315 MiB with it (the bench's own bookkeeping included; docs/performance.md).
pub const WINDOW: u64 = 1_000_000;

/// How a rebuild runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Events read and applied per transaction.
    pub batch: i64,
    /// Events of history after which a quiet order's state is written out and forgotten.
    pub window: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { batch: BATCH, window: WINDOW }
    }
}

impl Settings {
    /// The default settings with `batch` events per transaction.
    pub fn with_batch(batch: i64) -> Self {
        Self { batch, ..Self::default() }
    }
}

/// One rebuild per projection at a time, across processes.
const REBUILD_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('ledger-rebuild:' || $1))";
const REBUILD_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext('ledger-rebuild:' || $1))";

/// Rebuilds `projection` (whose read model lives in `tables`) and reports progress into
/// `progress`; stops early when `cancel` is cancelled.
pub async fn rebuild<P: Projection>(
    pool: &Pool,
    projection: &P,
    target: Target,
    settings: Settings,
    progress: RebuildProgress,
    cancel: CancellationToken,
) -> Result<RebuildStatus, RebuildError> {
    let name = projection.name();
    let schema = schema_of(name);
    progress.update(|s| {
        *s = RebuildStatus {
            projection: name.to_owned(),
            state: RebuildPhase::Replaying,
            schema: schema.clone(),
            started_at: Some(Utc::now()),
            ..RebuildStatus::default()
        }
    });
    // Detached from the pool: if this task is aborted, dropping it closes the connection,
    // which releases the lock (a pooled one would keep it).
    let guard = deadpool_postgres::Object::take(pool.get().await.map_err(StoreError::from)?);
    let locked: bool = guard.query_one(REBUILD_LOCK, &[&name]).await?.try_get(0)?;
    if !locked {
        let error = RebuildError::AlreadyRunning(name.to_owned());
        progress.update(|s| {
            s.state = RebuildPhase::Failed;
            s.error = Some(error.to_string());
        });
        return Err(error);
    }
    let settings = Settings { batch: settings.batch.max(1), ..settings };
    let outcome = run(pool, projection, target, settings, &progress, cancel, &schema).await;
    let _ = guard.query_one(REBUILD_UNLOCK, &[&name]).await;
    progress.update(|s| {
        s.finished_at = Some(Utc::now());
        s.eta_seconds = None;
        match &outcome {
            Ok(()) => s.state = RebuildPhase::Done,
            Err(RebuildError::Cancelled) => s.state = RebuildPhase::Cancelled,
            Err(error) => {
                s.state = RebuildPhase::Failed;
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
    settings: Settings,
    progress: &RebuildProgress,
    cancel: CancellationToken,
    schema: &str,
) -> Result<(), RebuildError> {
    let name = projection.name();
    let batch_size = settings.batch;
    // Detached from the pool: a connection that an error leaves inside a transaction or a
    // `COPY` must be closed (rolling it back), not handed to someone else.
    let writer = deadpool_postgres::Object::take(pool.get().await.map_err(StoreError::from)?);
    writer.batch_execute(&format!("SET {BULK_COMMITS}; SET {NO_TIMEOUT}")).await?;
    create_generation(&writer, projection, schema).await?;
    let total: i64 = writer.query_one("SELECT count(*) FROM events", &[]).await?.try_get(0)?;
    progress.update(|s| s.total = total.unsigned_abs());
    let started = Instant::now();
    let mut replayed: u64 = 0;
    let mut report = |read: usize| {
        replayed += read as u64;
        let rate = replayed as f64 / started.elapsed().as_secs_f64().max(1e-6);
        progress.update(|s| {
            s.replayed = replayed;
            s.total = s.total.max(replayed);
            s.events_per_second = rate;
            s.eta_seconds = Some((s.total - replayed) as f64 / rate.max(1e-6));
        });
    };

    // Bulk: everything committed now, folded in memory and copied into bare tables.
    let mut fold = projection.replay();
    let mut streams = Streams::new(name, settings.window);
    let (mut batches, reader) = read_ahead(pool.clone(), batch_size, target);
    let mut after = CommitPosition { tx_id: 0, global_position: 0 };
    // One batch is written (on the writer connection, in a task) while the next is folded.
    let mut writing = Writing::Idle(Box::new(writer));
    loop {
        let batch = tokio::select! {
            batch = batches.recv() => batch,
            () = cancel.cancelled() => return Err(RebuildError::Cancelled),
        };
        let Some(batch) = batch else { break };
        let batch = batch?;
        for event in &batch.events {
            if streams.feed(event)? == Fold::Fold {
                fold.feed(event)?;
            }
        }
        for order in streams.evict_quiet()? {
            fold.evict(order);
        }
        let client = writing.finish().await?;
        let (rows, evicted) = (fold.take(false), streams.take_evicted());
        writing = Writing::start::<P::Replay>(client, schema, rows, evicted);
        after = batch.last;
        report(batch.read);
    }
    reader.await.map_err(|e| ApplyError::Inconsistent(format!("the replay's reader: {e}")))?;
    let mut writer = writing.finish().await?;
    // The last rows commit durably, and with them every earlier record of the load: until
    // then a vacuum could not mark the pages all-visible (nor set hint bits) for rows whose
    // commit might still be lost.
    writer.batch_execute("SET synchronous_commit = on").await?;
    P::Replay::write(&writer, schema, fold.take(true)).await?;
    streams.flush(&writer, schema).await?;
    let phase = progress.enter(RebuildPhase::Indexing, started);
    index_generation(pool, &mut writer, projection, schema).await?;
    let revived = streams.take_revived();
    progress.update(|s| {
        s.orders_evicted = streams.evicted_orders;
        s.orders_revived = revived.len() as u64;
    });
    if !revived.is_empty() {
        let orders = revived.len();
        let applied = apply_revived(&mut writer, projection, schema, revived, batch_size).await?;
        tracing::info!(
            projection = name,
            orders,
            applied,
            "applied the events of orders the replay had evicted"
        );
    }
    let phase = progress.enter(RebuildPhase::Watermark, phase);
    {
        let transaction = in_generation(&mut writer, schema).await?;
        if target == Target::Live {
            watermark::advance_over(&transaction, name, &streams.applied, after).await?;
        } else {
            // Events outside the cut were read but not applied: look them up.
            catch_up_watermark(&transaction, name).await?;
        }
        transaction.commit().await?;
    }
    let mut phase = progress.enter(RebuildPhase::CatchingUp, phase);
    // From here on, statements of a batch's size, as the live workers run: their timeout.
    writer.batch_execute("RESET statement_timeout").await?;

    // Incremental: what was committed since, through `apply` like the live workers.
    loop {
        if cancel.is_cancelled() {
            return Err(RebuildError::Cancelled);
        }
        let transaction = in_generation(&mut writer, schema).await?;
        let read = apply_next(&transaction, projection, target, &mut after, batch_size).await?;
        watermark::advance(&transaction, name).await?;
        transaction.commit().await?;
        report(read);
        if read < batch_size.unsigned_abs() as usize {
            break;
        }
    }
    if target == Target::Live {
        phase = progress.enter(RebuildPhase::Swapping, phase);
        swap(&mut writer, projection, schema, after, batch_size).await?;
    }
    progress.enter(RebuildPhase::Finished, phase);
    Ok(())
}

/// Advances the new generation's watermark until it stops moving (one call examines a
/// bounded number of events).
async fn catch_up_watermark(
    client: &impl GenericClient,
    projection: &str,
) -> Result<(), RebuildError> {
    // At the end of the store `complete_through` follows the clock, so only the position
    // tells whether another call would get further.
    let mut position = watermark::advance(client, projection).await?.position;
    loop {
        let next = watermark::advance(client, projection).await?.position;
        if next == position {
            return Ok(());
        }
        position = next;
    }
}

/// A rebuild running in the background of this process.
pub struct RunningRebuild {
    pub progress: RebuildProgress,
    pub cancel: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<RebuildStatus, RebuildError>>,
}

/// Starts rebuilding `kind` in the background.
pub fn start(pool: &Pool, kind: ProjectionKind, target: Target) -> RunningRebuild {
    start_with(pool, kind, target, Settings::default())
}

/// [`start`] with `settings`.
pub fn start_with(
    pool: &Pool,
    kind: ProjectionKind,
    target: Target,
    settings: Settings,
) -> RunningRebuild {
    let progress = RebuildProgress::default();
    let cancel = CancellationToken::new();
    let (pool, report, cancelled) = (pool.clone(), progress.clone(), cancel.clone());
    let task = match kind {
        ProjectionKind::Payments => tokio::spawn(async move {
            rebuild(&pool, &crate::payments::Payments, target, settings, report, cancelled).await
        }),
        ProjectionKind::Notifications => tokio::spawn(async move {
            rebuild(
                &pool,
                &crate::notifications::Notifications,
                target,
                settings,
                report,
                cancelled,
            )
            .await
        }),
    };
    RunningRebuild { progress, cancel, task }
}
