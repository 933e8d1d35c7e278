//! Reading streams outside a command, and opening units of work for commands.

use deadpool_postgres::{GenericClient, Pool};
use uuid::Uuid;

use crate::{Cut, RecordedEvent, StoreError, UnitOfWork};

const LOAD_STREAM: &str = "
    SELECT global_position, stream_id, stream_version, event_id, event_type, event_version,
           payload, metadata, recorded_at
      FROM events
     WHERE stream_id = $1
       AND stream_version <= $2
       AND global_position <= $3
       AND recorded_at <= $4
     ORDER BY stream_version";

#[derive(Clone)]
pub struct EventStore {
    pool: Pool,
}

impl EventStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The stream's events up to the cut, in stream order. An unknown stream is empty.
    pub async fn load(&self, stream_id: Uuid, cut: Cut) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.pool.get().await?;
        load_stream(&client, stream_id, cut).await
    }

    /// A pooled connection for the read side (read models, status reports).
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Opens a transaction for one command on one stream, holding that stream's lock
    /// until it ends. Dropping it without `commit` rolls it back.
    pub async fn begin(&self, stream_id: Uuid) -> Result<UnitOfWork, StoreError> {
        UnitOfWork::begin(&self.pool, stream_id).await
    }

    /// Opens one transaction for a batch of commands on `streams`, holding all their locks.
    pub async fn begin_batch(&self, streams: &[Uuid]) -> Result<crate::BatchWrite, StoreError> {
        crate::BatchWrite::begin(&self.pool, streams).await
    }

    /// Cheap liveness probe of the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}

pub async fn load_stream(
    client: &impl GenericClient,
    stream_id: Uuid,
    cut: Cut,
) -> Result<Vec<RecordedEvent>, StoreError> {
    // One statement for every kind of cut: the bounds that do not apply are wide open.
    let (version, position, time) = match cut {
        Cut::Latest => (i32::MAX, i64::MAX, chrono::DateTime::<chrono::Utc>::MAX_UTC),
        Cut::Version(version) => (
            i32::try_from(version).unwrap_or(i32::MAX),
            i64::MAX,
            chrono::DateTime::<chrono::Utc>::MAX_UTC,
        ),
        Cut::Position(position) => (i32::MAX, position, chrono::DateTime::<chrono::Utc>::MAX_UTC),
        Cut::Time(time) => (i32::MAX, i64::MAX, time),
    };
    let statement = client.prepare_cached(LOAD_STREAM).await?;
    let rows = client.query(&statement, &[&stream_id, &version, &position, &time]).await?;
    rows.iter().map(recorded_event).collect()
}

/// The advisory lock key of a stream: every writer of the stream takes it first.
pub(crate) fn stream_lock_key(stream_id: Uuid) -> i64 {
    let (high, low) = stream_id.as_u64_pair();
    i64::from_ne_bytes((high ^ low).to_ne_bytes())
}

pub(crate) fn recorded_event(row: &tokio_postgres::Row) -> Result<RecordedEvent, StoreError> {
    Ok(RecordedEvent {
        global_position: row.try_get(0)?,
        stream_id: row.try_get(1)?,
        stream_version: u32::try_from(row.try_get::<_, i32>(2)?).unwrap_or_default(),
        event_id: row.try_get(3)?,
        event_type: row.try_get(4)?,
        event_version: row.try_get(5)?,
        payload: row.try_get(6)?,
        metadata: row.try_get(7)?,
        recorded_at: row.try_get(8)?,
    })
}
