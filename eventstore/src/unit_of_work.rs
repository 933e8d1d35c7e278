//! One command's transaction: claim the idempotency key, read the stream, append, record
//! the response, commit. Either all of it is durable or none of it is.

use deadpool_postgres::{Object, Pool};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::idempotency::{CLAIM, LOOKUP, RECORD_RESPONSE};
use crate::store::load_stream;
use crate::transaction::OpenTransaction;
use crate::{
    AppendError, AppendedEvent, Claim, Cut, Metadata, NewEvent, RecordedEvent, StoreError,
};

const APPEND: &str = "
    WITH appended AS (
        INSERT INTO events (stream_id, stream_version, event_id, event_type, event_version,
                            payload, metadata)
        SELECT $1, e.stream_version, e.event_id, e.event_type, e.event_version, e.payload, $7
          FROM unnest($2::int4[], $3::uuid[], $4::text[], $5::int2[], $6::jsonb[])
               AS e (stream_version, event_id, event_type, event_version, payload)
         ORDER BY e.stream_version
        RETURNING stream_version, global_position
    )
    SELECT stream_version, global_position FROM appended ORDER BY stream_version";

pub struct UnitOfWork {
    transaction: OpenTransaction,
}

impl UnitOfWork {
    /// Begins a transaction and takes the stream's lock before anything is written.
    ///
    /// The lock serves two purposes. Writers of one order take turns instead of losing
    /// races and retrying (the unique constraint still guarantees correctness). And since
    /// PostgreSQL assigns a transaction id at its first write, which here always comes
    /// after the lock, successive writers of a stream get increasing transaction ids: the
    /// gap-safe `(tx_id, position)` order of [`crate::position`] is then stream order.
    pub(crate) async fn begin(pool: &Pool, stream_id: Uuid) -> Result<Self, StoreError> {
        let client = pool.get().await?;
        let key = crate::store::stream_lock_key(stream_id);
        let lock = client.prepare_cached("SELECT pg_advisory_xact_lock($1)").await?;
        let unit = Self { transaction: OpenTransaction::begin(client).await? };
        unit.client()?.execute(&lock, &[&key]).await?;
        Ok(unit)
    }

    fn client(&self) -> Result<&Object, StoreError> {
        self.transaction.client()
    }

    /// Claims `key` for this request. `request` is what makes two uses of the key "the
    /// same request" (method, path and body); only its SHA-256 is stored.
    pub async fn claim_idempotency_key(
        &mut self,
        key: &str,
        request: &[u8],
        stream_id: Uuid,
    ) -> Result<Claim, StoreError> {
        let client = self.client()?;
        let claim = client.prepare_cached(CLAIM).await?;
        if client.query_opt(&claim, &[&key, &request, &stream_id]).await?.is_some() {
            return Ok(Claim::Claimed);
        }
        let lookup = client.prepare_cached(LOOKUP).await?;
        let row = client.query_opt(&lookup, &[&key, &request]).await?.ok_or_else(|| {
            StoreError::Unavailable("idempotency key vanished while being claimed".to_owned())
        })?;
        if !row.try_get::<_, bool>(0)? {
            return Ok(Claim::Mismatch);
        }
        let status: Option<i16> = row.try_get(1)?;
        let body: Option<Vec<u8>> = row.try_get(2)?;
        match (status.and_then(|s| u16::try_from(s).ok()), body) {
            (Some(status), Some(body)) => Ok(Claim::Replay { status, body }),
            // Unreachable while responses are recorded before commit; refuse rather than
            // run the command a second time.
            _ => Err(StoreError::Unavailable("idempotency record has no response".to_owned())),
        }
    }

    /// The stream as seen by this transaction.
    pub async fn load(
        &mut self,
        stream_id: Uuid,
        cut: Cut,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        load_stream(self.client()?, stream_id, cut).await
    }

    /// Appends `events` after `expected_version` (0 for a new stream). A concurrent append
    /// to the same stream makes this fail with [`AppendError::Conflict`]; the transaction
    /// is then unusable and must be dropped.
    pub async fn append(
        &mut self,
        stream_id: Uuid,
        expected_version: u32,
        events: &[NewEvent],
        metadata: &Metadata,
    ) -> Result<Vec<AppendedEvent>, AppendError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let versions = (1..=events.len())
            .map(|offset| {
                u32::try_from(offset)
                    .ok()
                    .and_then(|offset| expected_version.checked_add(offset))
                    .and_then(|version| i32::try_from(version).ok())
                    .ok_or_else(|| StoreError::Unavailable("stream version overflow".to_owned()))
            })
            .collect::<Result<Vec<i32>, StoreError>>()?;
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type).collect();
        let event_versions: Vec<i16> = events.iter().map(|e| e.event_version).collect();
        let payloads: Vec<&serde_json::Value> = events.iter().map(|e| &e.payload).collect();
        let metadata = serde_json::to_value(metadata)
            .map_err(|error| StoreError::Unavailable(format!("metadata: {error}")))?;

        let client = self.client()?;
        let statement = client.prepare_cached(APPEND).await.map_err(StoreError::from)?;
        let rows = client
            .query(
                &statement,
                &[&stream_id, &versions, &ids, &types, &event_versions, &payloads, &metadata],
            )
            .await
            .map_err(|error| {
                if is_version_conflict(&error) {
                    AppendError::Conflict { stream_id, expected_version }
                } else {
                    AppendError::Store(error.into())
                }
            })?;
        events
            .iter()
            .zip(rows)
            .map(|(event, row)| {
                Ok(AppendedEvent {
                    event_id: event.event_id,
                    event_type: event.event_type,
                    stream_version: u32::try_from(row.try_get::<_, i32>(0)?).unwrap_or_default(),
                    global_position: row.try_get(1)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|error| AppendError::Store(error.into()))
    }

    /// The stream's snapshot of `shape` (if any) and the events after it.
    pub async fn load_from_snapshot(
        &mut self,
        stream_id: Uuid,
        shape: i32,
    ) -> Result<crate::snapshot::Loaded, StoreError> {
        let mut loaded =
            crate::snapshot::load_from_snapshots(self.client()?, &[stream_id], shape).await?;
        Ok(loaded.remove(&stream_id).unwrap_or_default())
    }

    /// Stores a snapshot of the stream's state in this transaction.
    pub async fn save_snapshot(
        &mut self,
        stream_id: Uuid,
        stream_version: u32,
        shape: i32,
        state: serde_json::Value,
    ) -> Result<(), StoreError> {
        crate::snapshot::save_snapshots(
            self.client()?,
            shape,
            &[(stream_id, stream_version, state)],
        )
        .await
    }

    /// Stores the response to replay for the claimed key.
    pub async fn record_response(
        &mut self,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let client = self.client()?;
        let statement = client.prepare_cached(RECORD_RESPONSE).await?;
        let status = i16::try_from(status).unwrap_or(i16::MAX);
        client.execute(&statement, &[&key, &status, &body]).await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.transaction.commit().await
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
