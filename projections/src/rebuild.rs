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
//!    the generation's watermark is brought up to date.
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

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool, Transaction};
use eventstore::position::{replay_committed_after, CommitPosition, ReplayedEvent};
use eventstore::{Cut, StoreError};
use futures_util::TryStreamExt;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_postgres::types::Type;

use crate::kind::ProjectionKind;
use crate::replay::{copy_in, ByOrder, Replay};
use crate::{apply, watermark, ApplyError, ProjectedEvent, Projection};

/// Events read and applied per transaction.
pub const BATCH: i64 = 10_000;

/// The tables besides the read model's own that hold a projection's bookkeeping, keyed by
/// projection name.
const BOOKKEEPING: &[&str] = &[STREAMS, "projection_status", "projection_watermarks"];
/// The bookkeeping table with one row per stream, partitioned by projection.
const STREAMS: &str = "projection_streams";

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
    /// `replaying`, `indexing`, `watermark`, `catching_up`, `swapping`; then
    /// `done`, `cancelled` or `failed`.
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
    /// How long each finished phase took, in order.
    pub phases: Vec<PhaseTime>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseTime {
    /// `replaying` (bulk), `indexing` (with statistics), `watermark`, `catching_up`, `swapping`.
    pub phase: String,
    pub seconds: f64,
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

    /// Ends the current phase (timed from `since`) and starts `next`; returns its start.
    fn enter(&self, next: &str, since: Instant) -> Instant {
        let now = Instant::now();
        self.update(|s| {
            s.phases
                .push(PhaseTime { phase: s.state.clone(), seconds: (now - since).as_secs_f64() });
            s.state = next.to_owned();
        });
        tracing::info!(phase = next, "rebuild phase");
        now
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
    mut cancel: watch::Receiver<bool>,
    schema: &str,
) -> Result<(), RebuildError> {
    let name = projection.name();
    // Detached from the pool: a connection that an error leaves inside a transaction or a
    // `COPY` must be closed (rolling it back), not handed to someone else.
    let writer = deadpool_postgres::Object::take(pool.get().await.map_err(StoreError::from)?);
    writer.batch_execute(&format!("SET {BULK_COMMITS}")).await?;
    create_generation(&writer, projection, schema).await?;
    let total: i64 = writer.query_one("SELECT count(*) FROM events", &[]).await?.get(0);
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
    let mut streams = Streams::default();
    let (mut batches, reader) = read_ahead(pool.clone(), batch_size, target);
    let mut after = CommitPosition { tx_id: 0, global_position: 0 };
    // One batch is written (on the writer connection, in a task) while the next is folded.
    let mut writing = Writing::Idle(Box::new(writer));
    loop {
        let batch = tokio::select! {
            batch = batches.recv() => batch,
            () = cancelled(&mut cancel) => return Err(RebuildError::Cancelled),
        };
        let Some(batch) = batch else { break };
        let batch = batch?;
        for event in &batch.events {
            streams.feed(event)?;
            fold.feed(event)?;
        }
        let client = writing.finish().await?;
        writing = Writing::start::<P::Replay>(client, schema, fold.take(false));
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
    streams.flush(&writer, schema, name).await?;
    let phase = progress.enter("indexing", started);
    index_generation(pool, &mut writer, projection, schema).await?;
    let phase = progress.enter("watermark", phase);
    {
        let transaction = in_generation(&mut writer, schema).await?;
        if target == Target::Live {
            watermark::advance_over(&transaction, name, streams.applied, after).await?;
        } else {
            // Events outside the cut were read but not applied: look them up.
            catch_up_watermark(&transaction, name).await?;
        }
        transaction.commit().await?;
    }
    let mut phase = progress.enter("catching_up", phase);

    // Incremental: what was committed since, through `apply` like the live workers.
    loop {
        if *cancel.borrow() {
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
        phase = progress.enter("swapping", phase);
        swap(&mut writer, projection, schema, after, batch_size).await?;
    }
    progress.enter("finished", phase);
    Ok(())
}

/// Applies the next events of the store after `after` (up to `batch_size`, in the gap-safe
/// order, those inside `target`) to the generation `transaction` writes, through the
/// projection's own `apply`, and moves `after` past them; returns how many were read.
async fn apply_next<P: Projection>(
    transaction: &Transaction<'_>,
    projection: &P,
    target: Target,
    after: &mut CommitPosition,
    batch_size: i64,
) -> Result<usize, RebuildError> {
    let rows: Vec<tokio_postgres::Row> = replay_committed_after(&**transaction, *after, batch_size)
        .await?
        .try_collect()
        .await
        .map_err(StoreError::from)?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let event = ReplayedEvent::from_row(row)?;
        *after = event.commit;
        if inside(target, event.commit.global_position, event.recorded_at) {
            events.push(decode(&event)?);
        }
    }
    if !events.is_empty() {
        apply::apply(transaction, projection, &events).await?;
    }
    Ok(rows.len())
}

/// The writer connection: idle, or writing a batch of rows in a task of its own.
enum Writing {
    Idle(Box<Writer>),
    Busy(tokio::task::JoinHandle<Result<Writer, ApplyError>>),
}

/// The connection that writes the new generation.
type Writer = deadpool_postgres::ClientWrapper;

impl Writing {
    fn start<R: Replay>(client: Writer, schema: &str, rows: R::Rows) -> Self {
        let schema = schema.to_owned();
        Self::Busy(tokio::spawn(async move {
            R::write(&client, &schema, rows).await?;
            Ok(client)
        }))
    }

    /// Waits for the write under way, if any, and hands the connection back.
    async fn finish(self) -> Result<Writer, RebuildError> {
        match self {
            Self::Idle(client) => Ok(*client),
            Self::Busy(task) => Ok(task
                .await
                .map_err(|e| ApplyError::Inconsistent(format!("the replay's writer: {e}")))??),
        }
    }
}

/// One batch of the store as the replay reads it.
struct ReadBatch {
    /// The events inside the target, decoded.
    events: Vec<ProjectedEvent>,
    /// Events read, inside the target or not.
    read: usize,
    last: CommitPosition,
}

impl ReadBatch {
    /// An empty batch; it is sent only once it has read an event, which sets `last`.
    fn with_capacity(capacity: usize) -> Self {
        Self { events: Vec::with_capacity(capacity), read: 0, last: CommitPosition::default() }
    }
}

/// Events per statement of the bulk read: enough that starting a statement costs nothing,
/// few enough that no statement holds its snapshot (and vacuum's horizon) for long.
pub const READ_CHUNK: i64 = 100_000;

/// How the bulk load's batches commit: without waiting for the WAL to reach the disk. A
/// crash loses an unfinished generation either way (a rebuild starts over), and the load's
/// last rows commit durably, which flushes every earlier record with their own. (The index
/// builds commit durably: an asynchronous commit marks the commit-log group it shares
/// with the load's last transactions as not yet flushed, and a vacuum beside the builds
/// could then not mark the loaded pages all-visible.)
const BULK_COMMITS: &str = "synchronous_commit = off";

/// Reads the store in the gap-safe order and decodes it, a couple of batches ahead of the
/// fold, until a batch comes back short: the end of what is committed. Stops when the
/// receiver is dropped.
fn read_ahead(
    pool: Pool,
    batch_size: i64,
    target: Target,
) -> (mpsc::Receiver<Result<ReadBatch, RebuildError>>, tokio::task::JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(2);
    let task = tokio::spawn(async move {
        if let Err(error) = read_all(&pool, batch_size, target, &sender).await {
            let _ = sender.send(Err(error)).await;
        }
    });
    (receiver, task)
}

async fn read_all(
    pool: &Pool,
    batch_size: i64,
    target: Target,
    sender: &mpsc::Sender<Result<ReadBatch, RebuildError>>,
) -> Result<(), RebuildError> {
    let client = pool.get().await.map_err(StoreError::from)?;
    let batch_size = usize::try_from(batch_size).unwrap_or(1);
    let mut last = CommitPosition::default();
    let mut batch = ReadBatch::with_capacity(batch_size);
    loop {
        // The rows of one statement are decoded as they arrive, and handed on a batch at
        // a time.
        let rows = replay_committed_after(&**client, last, READ_CHUNK).await?;
        futures_util::pin_mut!(rows);
        let mut read: i64 = 0;
        while let Some(row) = rows.try_next().await.map_err(StoreError::from)? {
            let event = ReplayedEvent::from_row(&row)?;
            read += 1;
            last = event.commit;
            batch.read += 1;
            batch.last = last;
            if inside(target, event.commit.global_position, event.recorded_at) {
                batch.events.push(decode(&event)?);
            }
            if batch.read == batch_size {
                let full = std::mem::replace(&mut batch, ReadBatch::with_capacity(batch_size));
                if sender.send(Ok(full)).await.is_err() {
                    return Ok(());
                }
            }
        }
        if read < READ_CHUNK {
            // Short: the end of what is committed.
            if batch.read > 0 {
                let _ = sender.send(Ok(batch)).await;
            }
            return Ok(());
        }
    }
}

/// Resolves when the rebuild is cancelled (never, once nobody can cancel it).
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|cancelled| *cancelled).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// An event as read, decoded to its current shape.
fn decode(event: &ReplayedEvent<'_>) -> Result<ProjectedEvent, ApplyError> {
    let decoded =
        eventstore::schema::decode_str(event.event_type, event.event_version, event.payload)
            .map_err(|e| ApplyError::Undecodable(e.to_string()))?;
    Ok(ProjectedEvent {
        event_id: event.event_id,
        stream_id: event.stream_id,
        stream_version: event.stream_version,
        position: event.commit.global_position,
        recorded_at: event.recorded_at,
        event: decoded,
    })
}

/// The bookkeeping `apply` keeps, kept by the bulk replay: each stream's last version (the
/// replay checks that none is skipped) and every event applied (its position and time).
#[derive(Default)]
struct Streams {
    versions: ByOrder<u32>,
    /// Position and append time of every event applied, for the watermark.
    applied: Vec<(i64, DateTime<Utc>)>,
}

impl Streams {
    fn feed(&mut self, event: &ProjectedEvent) -> Result<(), ApplyError> {
        let last = self.versions.entry(event.stream_id).or_insert(0);
        if event.stream_version != *last + 1 {
            return Err(ApplyError::Inconsistent(format!(
                "order {} has version {} after {} in the gap-safe order",
                event.stream_id, event.stream_version, last
            )));
        }
        *last = event.stream_version;
        self.applied.push((event.position, event.recorded_at));
        Ok(())
    }

    async fn flush(
        &self,
        client: &tokio_postgres::Client,
        schema: &str,
        projection: &str,
    ) -> Result<(), ApplyError> {
        let mut rows = copy_in(
            client,
            schema,
            "projection_streams",
            &["projection", "stream_id", "stream_version"],
            &[Type::TEXT, Type::UUID, Type::INT4],
        )
        .await?;
        for (stream_id, version) in &self.versions {
            let version = i32::try_from(*version).unwrap_or(i32::MAX);
            rows.as_mut().write(&[&projection, stream_id, &version]).await?;
        }
        rows.as_mut().finish().await?;
        if let Ok(applied @ 1..) = i64::try_from(self.applied.len()) {
            client
                .execute(
                    &format!(
                        "INSERT INTO {schema}.projection_status (projection, applied_events, last_position, last_applied_at, updated_at)
                         VALUES ($1, $2, $3, now(), now())"
                    ),
                    &[&projection, &applied, &self.applied.iter().map(|(position, _)| *position).max()],
                )
                .await?;
        }
        Ok(())
    }
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
    client: &'a mut Writer,
    schema: &str,
) -> Result<Transaction<'a>, RebuildError> {
    let transaction = client.transaction().await?;
    transaction.batch_execute(&format!("SET LOCAL search_path = {schema}, public")).await?;
    Ok(transaction)
}

/// An empty copy of the live tables, and of the bookkeeping: columns, defaults, generated
/// columns and checks, but no indexes or keys yet ([`index_generation`] adds them once
/// the bulk load is in).
///
/// Each statement of the load commits on its own. (Loading in the transaction that creates
/// the tables would let `COPY … FREEZE` skip the vacuum, but that transaction's id would
/// hold the gap-safe horizon, and with it the relay, for the whole replay.)
async fn create_generation<P: Projection>(
    client: &Writer,
    projection: &P,
    schema: &str,
) -> Result<(), RebuildError> {
    let name = projection.name();
    let mut ddl = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};");
    for table in projection.tables().iter().chain(BOOKKEEPING) {
        ddl.push_str(&format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL EXCLUDING INDEXES);"
        ));
    }
    // The swap attaches this table as the projection's partition; with the partition's
    // bound as a check, attaching needs no scan to prove it.
    ddl.push_str(&format!(
        "ALTER TABLE {schema}.{STREAMS} ADD CONSTRAINT {STREAMS}_bound CHECK (projection = '{name}');"
    ));
    client.batch_execute(&ddl).await?;
    Ok(())
}

/// The live table a generation's `table` replaces: the projection's own partition of the
/// applied versions, the table itself otherwise.
fn live_name(table: &str, projection: &str) -> String {
    if table == STREAMS {
        format!("{STREAMS}_{projection}")
    } else {
        table.to_owned()
    }
}

/// Gives the new generation the live tables' keys and indexes, with the same names: every
/// index is built, a few at a time on connections of their own (one sort each; building
/// several at once overlaps their single-threaded phases), and every table analysed; then
/// primary and unique keys are attached to their indexes and the foreign keys added
/// (re-pointed at the new generation).
async fn index_generation<P: Projection>(
    pool: &Pool,
    client: &mut Writer,
    projection: &P,
    schema: &str,
) -> Result<(), RebuildError> {
    /// Index builds at once. The longest build (the covering index over every version)
    /// decides when the phase ends; on the 2-core machine the benches run on, a third
    /// build beside it made the phase a fifth longer (4.5 s against 5.5 s at 1M events).
    const BUILDERS: usize = 2;
    const INDEXES: &str = "
        SELECT c.relname, i.indisunique, regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING ', ''),
               k.contype::text, pg_relation_size(i.indexrelid), i.indnkeyatts < i.indnatts
          FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          LEFT JOIN pg_constraint k
                 ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u')
         WHERE i.indrelid = ('public.' || $1)::regclass";
    const FOREIGN_KEYS: &str = "
        SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = ('public.' || $1)::regclass AND contype = 'f'";
    // The read model's own tables, biggest (last) first, then the bookkeeping.
    let tables: Vec<&str> = projection.tables().iter().rev().chain(BOOKKEEPING).copied().collect();
    let mut builds = Vec::new();
    let mut keys = String::new();
    // Tables with a covering index, which is there for index-only scans.
    let mut covered = Vec::new();
    for table in &tables {
        for index in client.query(INDEXES, &[&live_name(table, projection.name())]).await? {
            let (name, unique, definition, constraint): (String, bool, String, Option<String>) =
                (index.get(0), index.get(1), index.get(2), index.get(3));
            if index.get::<_, bool>(5) && !covered.contains(table) {
                covered.push(*table);
            }
            let unique = if unique { "UNIQUE " } else { "" };
            builds.push((
                index.get::<_, i64>(4),
                format!("CREATE {unique}INDEX {name} ON {schema}.{table} USING {definition}"),
            ));
            let kind = match constraint.as_deref() {
                Some("p") => "PRIMARY KEY",
                Some(_) => "UNIQUE",
                None => continue,
            };
            keys.push_str(&format!(
                "ALTER TABLE {schema}.{table} ADD CONSTRAINT {name} {kind} USING INDEX {name};"
            ));
        }
    }
    for table in &tables {
        for key in client.query(FOREIGN_KEYS, &[&live_name(table, projection.name())]).await? {
            let (name, definition): (String, String) = (key.get(0), key.get(1));
            // Printed with `public` on the search path, the referenced table is unqualified,
            // so it resolves to the new generation's.
            keys.push_str(&format!(
                "ALTER TABLE {schema}.{table} ADD CONSTRAINT {name} {definition};"
            ));
        }
    }

    // The longest builds first, so that they do not end up running alone at the end: by
    // the size of the index they replace.
    builds.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    // Sort in memory rather than in temporary files when it can, in this process: the
    // builds already run side by side, and a parallel build's workers would only add their
    // merge and shared temporary files.
    let mut jobs: Vec<String> = builds
        .into_iter()
        .map(|(_, build)| {
            format!(
                "BEGIN; SET LOCAL maintenance_work_mem = '256MB';
                 SET LOCAL max_parallel_maintenance_workers = 0; {build}; COMMIT"
            )
        })
        .collect();
    // Statistics for the planner, and, where a covering index is there for index-only
    // scans, the visibility map that lets them skip the table: a table loaded in bulk has
    // neither until autovacuum comes by. (Elsewhere a vacuum would only set hint bits, which
    // the first index build has set.) Queued after every build, so they run beside the
    // last ones; a table's waits for the builds on it.
    jobs.extend(tables.iter().map(|table| {
        let vacuum = if covered.contains(table) { "VACUUM (ANALYZE)" } else { "ANALYZE" };
        format!("{vacuum} {schema}.{table}")
    }));

    let builders = Arc::new(tokio::sync::Semaphore::new(BUILDERS));
    let mut running = tokio::task::JoinSet::new();
    for job in jobs {
        // Taken here, so the jobs start in the order queued (the biggest tables first).
        let turn = builders.clone().acquire_owned().await;
        let pool = pool.clone();
        running.spawn(async move {
            let _turn = turn;
            let client = pool.get().await.map_err(StoreError::from)?;
            client.batch_execute(&job).await?;
            Ok::<_, RebuildError>(())
        });
    }
    while let Some(built) = running.join_next().await {
        built.map_err(|e| ApplyError::Inconsistent(format!("an index build: {e}")))??;
    }
    for table in &covered {
        make_all_visible(client, &format!("{schema}.{table}")).await?;
    }
    let transaction = in_generation(client, schema).await?;
    transaction.batch_execute(&keys).await?;
    transaction.commit().await?;
    Ok(())
}

/// Vacuums `table` again until every page is marked all-visible, a few times at most.
///
/// A vacuum leaves a page unmarked while any transaction might still not see its rows, or
/// while their commit might still be lost. The second can happen after the load's last
/// commit was flushed: another session's asynchronous commit that shares a commit-log
/// group with the load's last transactions makes that group wait for the WAL again (for up
/// to the WAL writer's delay). Index-only scans need the mark, so on a short count this
/// flushes the WAL (a durable commit flushes everything before it) and vacuums again.
async fn make_all_visible(client: &Writer, table: &str) -> Result<(), RebuildError> {
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        let row = client
            .query_one(
                "SELECT relpages, relallvisible FROM pg_class WHERE oid = $1::text::regclass",
                &[&table],
            )
            .await?;
        let (pages, visible): (i32, i32) = (row.get(0), row.get(1));
        if visible >= pages {
            return Ok(());
        }
        tracing::debug!(table, pages, visible, attempt, "vacuuming again for the visibility map");
        client.batch_execute("BEGIN; SELECT pg_current_xact_id(); COMMIT").await?;
        tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
        client.batch_execute(&format!("VACUUM {table}")).await?;
    }
    Ok(())
}

/// Makes the new generation the live one, in one transaction. The replay has read the
/// store up to `after`.
async fn swap<P: Projection>(
    client: &mut Writer,
    projection: &P,
    schema: &str,
    mut after: CommitPosition,
    batch_size: i64,
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

    // Everything the live generation applied must be in the new one. The live workers
    // apply only what the relay published, which it reads in this same gap-safe order, so
    // all of it is below the horizon now: reading on from where the replay stopped brings
    // the new generation at least as far. This costs the few events committed since the
    // catch-up, not a comparison of every order's applied version (0.3 s at 200 000 orders,
    // with the readers waiting). Whatever the new generation has beyond the live one, the
    // live workers skip as already applied.
    while apply_next(&transaction, projection, Target::Live, &mut after, batch_size).await?
        == batch_size.unsigned_abs() as usize
    {}
    watermark::advance(&transaction, name).await?;

    let mut ddl = format!("DROP SCHEMA IF EXISTS {retired} CASCADE; CREATE SCHEMA {retired};");
    for table in tables {
        ddl.push_str(&format!("ALTER TABLE public.{table} SET SCHEMA {retired};"));
    }
    for table in tables {
        ddl.push_str(&format!("ALTER TABLE {schema}.{table} SET SCHEMA public;"));
    }
    // The projection's applied versions: its partition is replaced, not copied.
    let streams = live_name(STREAMS, name);
    ddl.push_str(&format!(
        "ALTER TABLE public.{STREAMS} DETACH PARTITION public.{streams};
         ALTER TABLE public.{streams} SET SCHEMA {retired};
         ALTER TABLE {schema}.{STREAMS} RENAME TO {streams};
         ALTER TABLE {schema}.{streams} SET SCHEMA public;
         ALTER TABLE public.{STREAMS} ATTACH PARTITION public.{streams} FOR VALUES IN ('{name}');
         ALTER TABLE public.{streams} DROP CONSTRAINT {STREAMS}_bound;"
    ));
    transaction.batch_execute(&ddl).await?;
    for table in BOOKKEEPING.iter().filter(|table| **table != STREAMS) {
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
    transaction.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await?;
    transaction.commit().await?;
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {retired} CASCADE")).await?;
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

/// Starts rebuilding `kind` in the background.
pub fn start(pool: &Pool, kind: ProjectionKind, target: Target) -> RunningRebuild {
    start_with_batch(pool, kind, target, BATCH)
}

/// [`start`] with `batch` events per transaction.
pub fn start_with_batch(
    pool: &Pool,
    kind: ProjectionKind,
    target: Target,
    batch: i64,
) -> RunningRebuild {
    let progress = RebuildProgress::default();
    let (cancel, cancelled) = watch::channel(false);
    let (pool, report) = (pool.clone(), progress.clone());
    let task = match kind {
        ProjectionKind::Payments => tokio::spawn(async move {
            rebuild(&pool, &crate::payments::Payments, target, batch, report, cancelled).await
        }),
        ProjectionKind::Notifications => tokio::spawn(async move {
            rebuild(&pool, &crate::notifications::Notifications, target, batch, report, cancelled)
                .await
        }),
    };
    RunningRebuild { progress, cancel, task }
}
