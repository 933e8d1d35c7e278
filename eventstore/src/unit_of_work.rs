//! One transaction for the commands on a set of streams: the one write path, whether it
//! carries one command or a group-committed batch. Set-based: one statement per step for
//! all its commands (claim the keys, load the streams, append, record the outcomes,
//! snapshot), and one commit.
//!
//! It takes the lock of every stream it touches, in a fixed order (so two units never
//! deadlock), before its first write. The lock makes writers of one order take turns
//! instead of losing races, and — since PostgreSQL assigns a transaction id at its first
//! write, which here always comes after the lock — successive writers of a stream get
//! increasing transaction ids: the gap-safe `(tx_id, position)` order of
//! [`crate::position`] is then stream order.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use tokio_postgres::error::SqlState;
use tokio_postgres::Statement;
use uuid::Uuid;

use crate::error::{AppendError, StoreError};
use crate::idempotency::{self, Claim, KeyClaim, CLAIM_ALL, RECORD_ALL, RELEASE_ALL};
use crate::recorded::{Metadata, RecordedEvent};
use crate::rows::{recorded_event, stream_lock_key, to_stored_version};
use crate::schema::NewEvent;
use crate::snapshot::{self, Loaded, SnapshotState};
use crate::transaction::OpenTransaction;

const LOCK_ALL: &str = "SELECT pg_advisory_xact_lock(key) FROM unnest($1::int8[]) AS t (key)";
const LOAD_ALL: &str = concat!(
    "SELECT ",
    crate::rows::event_columns!(),
    " FROM events WHERE stream_id = ANY($1) ORDER BY stream_id, stream_version"
);
const APPEND_ALL: &str = "
    INSERT INTO events (stream_id, stream_version, event_id, event_type, event_version, payload, metadata)
    SELECT stream_id, stream_version, event_id, event_type, event_version, payload, metadata
      FROM unnest($1::uuid[], $2::int4[], $3::uuid[], $4::text[], $5::int2[], $6::jsonb[], $7::jsonb[])
           WITH ORDINALITY
           AS e (stream_id, stream_version, event_id, event_type, event_version, payload, metadata, ordinal)
     ORDER BY ordinal
    RETURNING global_position";

/// How a unit of work's statements are planned.
#[derive(Clone, Copy)]
enum Plans {
    /// For each execution. The loads join arrays of keys to tables that grow from empty: a
    /// plan cached while a table was small (a sequential scan and a hash join) would stay
    /// in use as it grows to millions of rows.
    Each,
    /// As the server caches them: for statements that read no table by the keys (taking
    /// locks, inserting rows).
    Cached,
}

/// One event to append: its stream, version, the event and its metadata.
pub struct StreamEvent<'a> {
    pub stream_id: Uuid,
    pub stream_version: u32,
    pub event: &'a NewEvent,
    pub metadata: &'a serde_json::Value,
}

/// A transaction holding the locks of a set of streams.
pub struct UnitOfWork {
    transaction: OpenTransaction,
    /// How long idempotency records count (see [`crate::idempotency`]).
    key_retention: Duration,
}

impl UnitOfWork {
    pub(crate) async fn begin(
        pool: &Pool,
        streams: &[Uuid],
        budget: Duration,
        key_retention: Duration,
    ) -> Result<Self, StoreError> {
        let client = crate::pool::acquire_within(pool, budget).await?;
        let lock = client.prepare_cached(LOCK_ALL).await?;
        let unit = Self { transaction: OpenTransaction::opening(client), key_retention };
        unit.lock(&lock, streams, Plans::Each).await?;
        Ok(unit)
    }

    /// [`Self::begin`], and in the same round trip claims `keys` (distinct; a key whose
    /// record is older than the retention is claimed afresh) and loads each stream from
    /// its snapshot of `shape`: the requests go to the server together, in that order, so
    /// the claims and the loads run under the locks.
    pub(crate) async fn begin_loading(
        pool: &Pool,
        streams: &[Uuid],
        budget: Duration,
        key_retention: Duration,
        keys: &[KeyClaim],
        shape: i32,
    ) -> Result<(Self, Vec<Claim>, HashMap<Uuid, Loaded>), StoreError> {
        let client = crate::pool::acquire_within(pool, budget).await?;
        // Prepared first (from the connection's cache after its first unit of work), so
        // that nothing waits between the requests below and they are sent in order.
        let lock = client.prepare_cached(LOCK_ALL).await?;
        let claim = client.prepare_cached(CLAIM_ALL).await?;
        let snapshots = snapshot::Statements::prepare(&client).await?;
        let unit = Self { transaction: OpenTransaction::opening(client), key_retention };
        let client = unit.client()?;
        let ((), claimed, loaded) = tokio::try_join!(
            unit.lock(&lock, streams, Plans::Each),
            unit.claim(&claim, keys),
            snapshots.load(client, streams, shape),
        )?;
        let claims = unit.resolve_claims(keys, claimed).await?;
        Ok((unit, claims, loaded))
    }

    /// Appends the first events of streams that do not exist yet and commits: one
    /// transaction and one round trip, the locks, the append and the `COMMIT` sent
    /// together. A new stream is empty, so nothing needs loading; if one of them exists
    /// after all, its first version is taken and the whole append fails with
    /// [`AppendError::Conflict`]: nothing is written.
    pub(crate) async fn create_streams(
        pool: &Pool,
        budget: Duration,
        key_retention: Duration,
        events: &[StreamEvent<'_>],
    ) -> Result<Vec<i64>, AppendError> {
        let mut streams: Vec<Uuid> = events.iter().map(|e| e.stream_id).collect();
        streams.sort_unstable();
        streams.dedup();
        let client = crate::pool::acquire_within(pool, budget).await?;
        // Prepared first, so that nothing waits between the requests below.
        let lock = client.prepare_cached(LOCK_ALL).await.map_err(StoreError::from)?;
        let append = client.prepare_cached(APPEND_ALL).await.map_err(StoreError::from)?;
        let unit = Self { transaction: OpenTransaction::opening(client), key_retention };
        // An error in any statement leaves the transaction aborted, and the server answers
        // the `COMMIT` with a rollback: the first error is the answer.
        // All three answers are awaited, so that after a refused append the connection
        // (its transaction ended by the `COMMIT`) goes back to the pool.
        let (locked, positions, committed) = tokio::join!(
            unit.lock(&lock, &streams, Plans::Cached),
            unit.append_with(&append, events),
            unit.transaction.commit_pipelined(),
        );
        locked?;
        let positions = positions?;
        committed?;
        Ok(positions)
    }

    /// Begins the transaction and takes the append lock and the streams' locks; sent when
    /// first polled. `plans` says how the unit's statements are planned.
    async fn lock(
        &self,
        lock: &Statement,
        streams: &[Uuid],
        plans: Plans,
    ) -> Result<(), StoreError> {
        let mut keys: Vec<i64> = streams.iter().map(|s| stream_lock_key(*s)).collect();
        keys.sort_unstable();
        keys.dedup();
        let client = self.client()?;
        let begin = match plans {
            Plans::Each => {
                "BEGIN; SELECT ledger_append_lock(); SET LOCAL plan_cache_mode = force_custom_plan"
            }
            Plans::Cached => "BEGIN; SELECT ledger_append_lock()",
        };
        // The append lock comes first: the horizon protocol of `crate::position`. The
        // streams' locks go with it, pipelined: one round trip. (Dropped on an error, the
        // unit closes its connection, which ends whatever began.)
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&keys];
        tokio::try_join!(client.batch_execute(begin), client.query(lock, &params))?;
        Ok(())
    }

    fn client(&self) -> Result<&Object, StoreError> {
        self.transaction.client()
    }

    /// The keys this transaction claimed; sent when first polled.
    async fn claim(&self, claim: &Statement, keys: &[KeyClaim]) -> Result<Vec<String>, StoreError> {
        idempotency::claim(self.client()?, claim, keys, self.key_retention).await
    }

    /// Each key's claim, given the keys this transaction claimed.
    async fn resolve_claims(
        &self,
        keys: &[KeyClaim],
        claimed: Vec<String>,
    ) -> Result<Vec<Claim>, StoreError> {
        idempotency::resolve_claims(self.client()?, keys, claimed).await
    }

    /// Gives back keys claimed by commands that were refused (they wrote nothing); sent
    /// when first polled.
    async fn release(&self, release: &Statement, keys: &[&str]) -> Result<(), StoreError> {
        if !keys.is_empty() {
            self.client()?.execute(release, &[&keys]).await?;
        }
        Ok(())
    }

    /// Every event of the given streams, by stream, in stream order.
    pub async fn load_streams(
        &self,
        streams: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<RecordedEvent>>, StoreError> {
        let client = self.client()?;
        let load = client.prepare_cached(LOAD_ALL).await?;
        let mut histories: HashMap<Uuid, Vec<RecordedEvent>> = HashMap::new();
        for row in client.query(&load, &[&streams]).await? {
            let event = recorded_event(&row)?;
            histories.entry(event.stream_id).or_default().push(event);
        }
        Ok(histories)
    }

    /// Appends the events in the given order and returns their global positions. A version
    /// taken by a writer that did not hold the stream's lock fails the whole statement with
    /// [`AppendError::Conflict`].
    pub async fn append(&self, events: &[StreamEvent<'_>]) -> Result<Vec<i64>, AppendError> {
        let append = self.client()?.prepare_cached(APPEND_ALL).await.map_err(StoreError::from)?;
        self.append_with(&append, events).await
    }

    /// [`Self::append`]; sent when first polled.
    async fn append_with(
        &self,
        append: &Statement,
        events: &[StreamEvent<'_>],
    ) -> Result<Vec<i64>, AppendError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let streams: Vec<Uuid> = events.iter().map(|e| e.stream_id).collect();
        let versions: Vec<i32> =
            events.iter().map(|e| to_stored_version(e.stream_version)).collect::<Result<_, _>>()?;
        let ids: Vec<Uuid> = events.iter().map(|e| e.event.event_id).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event.event_type).collect();
        let event_versions: Vec<i16> = events.iter().map(|e| e.event.event_version).collect();
        let payloads: Vec<&serde_json::Value> = events.iter().map(|e| &e.event.payload).collect();
        let metadata: Vec<&serde_json::Value> = events.iter().map(|e| e.metadata).collect();
        let rows = self
            .client()?
            .query(
                append,
                &[&streams, &versions, &ids, &types, &event_versions, &payloads, &metadata],
            )
            .await
            .map_err(|error| {
                if is_version_conflict(&error) {
                    AppendError::Conflict
                } else {
                    AppendError::Store(error.into())
                }
            })?;
        rows.iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|error| AppendError::Store(error.into()))
    }

    /// Gives back the `released` keys of refused commands and appends `events` (see
    /// [`Self::append`]): one round trip.
    pub async fn release_and_append(
        &self,
        released: &[&str],
        events: &[StreamEvent<'_>],
    ) -> Result<Vec<i64>, AppendError> {
        let client = self.client()?;
        let release = client.prepare_cached(RELEASE_ALL).await.map_err(StoreError::from)?;
        let append = client.prepare_cached(APPEND_ALL).await.map_err(StoreError::from)?;
        let ((), positions) = tokio::try_join!(
            async { self.release(&release, released).await.map_err(AppendError::Store) },
            self.append_with(&append, events),
        )?;
        Ok(positions)
    }

    /// [`Self::release_and_append`], stores the snapshots of `shape` and commits: one round
    /// trip, for a unit of work with no outcome to record. Returns the events' positions.
    pub async fn append_and_commit(
        self,
        released: &[&str],
        events: &[StreamEvent<'_>],
        shape: i32,
        snapshots: &[SnapshotState],
    ) -> Result<Vec<i64>, AppendError> {
        let client = self.client()?;
        let release = client.prepare_cached(RELEASE_ALL).await.map_err(StoreError::from)?;
        let append = client.prepare_cached(APPEND_ALL).await.map_err(StoreError::from)?;
        let save = snapshot::Statements::prepare(client).await?;
        // An error in any statement leaves the transaction aborted, and the server answers
        // the `COMMIT` with a rollback: the first error is the answer.
        // All answers are awaited, so that after a refused append the connection (its
        // transaction ended by the `COMMIT`) goes back to the pool.
        let (released, positions, saved, committed) = tokio::join!(
            self.release(&release, released),
            self.append_with(&append, events),
            save.save(client, shape, snapshots),
            self.transaction.commit_pipelined(),
        );
        released?;
        let positions = positions?;
        saved?;
        committed?;
        Ok(positions)
    }

    /// Appends `events` to one stream after `expected_version` (0 for a new stream), all
    /// with `metadata`; returns their global positions.
    pub async fn append_to_stream(
        &mut self,
        stream_id: Uuid,
        expected_version: u32,
        events: &[NewEvent],
        metadata: &Metadata,
    ) -> Result<Vec<i64>, AppendError> {
        let metadata = serde_json::to_value(metadata)
            .map_err(|error| StoreError::Invariant(format!("metadata does not encode: {error}")))?;
        let events: Vec<StreamEvent<'_>> = (1u32..)
            .zip(events)
            .map(|(offset, event)| StreamEvent {
                stream_id,
                stream_version: expected_version + offset,
                event,
                metadata: &metadata,
            })
            .collect();
        self.append(&events).await
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.transaction.commit().await
    }

    /// Records the outcomes to replay for claimed keys (`(key, outcome)`), stores the
    /// snapshots of `shape`, and commits: one round trip. The statements are prepared
    /// first, so that nothing can overtake them (a `COMMIT` ahead of one would leave it
    /// outside the transaction).
    pub async fn commit_with(
        self,
        outcomes: &[(&str, &[u8])],
        shape: i32,
        snapshots: &[SnapshotState],
    ) -> Result<(), StoreError> {
        let client = self.client()?;
        let record = client.prepare_cached(RECORD_ALL).await?;
        let save = snapshot::Statements::prepare(client).await?;
        let keys: Vec<&str> = outcomes.iter().map(|o| o.0).collect();
        let bodies: Vec<&[u8]> = outcomes.iter().map(|o| o.1).collect();
        // An error in the first leaves the transaction aborted, and the server answers the
        // `COMMIT` with a rollback: the first error is the answer.
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&keys, &bodies];
        tokio::try_join!(
            save.save(client, shape, snapshots),
            async {
                if !outcomes.is_empty() {
                    client.execute(&record, &params).await?;
                }
                Ok::<(), StoreError>(())
            },
            self.transaction.commit_pipelined(),
        )?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        self.transaction.rollback().await
    }
}

fn is_version_conflict(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
        && error
            .as_db_error()
            .and_then(|db| db.constraint())
            .is_some_and(|constraint| constraint == "events_stream_version_unique")
}
