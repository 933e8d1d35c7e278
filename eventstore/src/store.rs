//! Reading streams outside a command, and opening units of work for commands.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use uuid::Uuid;

use crate::error::{AppendError, StoreError};
use crate::idempotency::{Claim, KeyClaim};
use crate::recorded::{Cut, RecordedEvent};
use crate::rows::recorded_event;
use crate::snapshot::Loaded;
use crate::unit_of_work::{StreamEvent, UnitOfWork};

const LOAD_STREAM: &str = concat!(
    "SELECT ",
    crate::rows::event_columns!(),
    " FROM events
     WHERE stream_id = $1
       AND stream_version <= $2
       AND global_position <= $3
       AND recorded_at <= $4
     ORDER BY stream_version"
);

#[derive(Clone)]
pub struct EventStore {
    pool: Pool,
    key_retention: Duration,
}

impl EventStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool, key_retention: crate::idempotency::DEFAULT_RETENTION }
    }

    /// How long idempotency records count; after it a key is unknown again.
    pub fn with_idempotency_retention(self, key_retention: Duration) -> Self {
        Self { key_retention, ..self }
    }

    pub fn idempotency_retention(&self) -> Duration {
        self.key_retention
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The stream's events up to the cut, in stream order. An unknown stream is empty.
    pub async fn load(&self, stream_id: Uuid, cut: Cut) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = crate::pool::acquire(&self.pool).await?;
        load_stream(&client, stream_id, cut).await
    }

    /// A pooled connection for the read side (read models, status reports).
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        crate::pool::acquire(&self.pool).await
    }

    /// Opens one transaction for commands on `streams`, holding all their locks until it
    /// ends. Dropping it without `commit` rolls it back.
    pub async fn begin(&self, streams: &[Uuid]) -> Result<UnitOfWork, StoreError> {
        UnitOfWork::begin(
            &self.pool,
            streams,
            crate::pool::wait_timeout(&self.pool),
            self.key_retention,
        )
        .await
    }

    /// [`Self::begin`], giving up with `Unavailable` unless a connection is had within
    /// `budget`: for a caller that has already waited part of the pool's wait timeout.
    pub async fn begin_within(
        &self,
        streams: &[Uuid],
        budget: Duration,
    ) -> Result<UnitOfWork, StoreError> {
        UnitOfWork::begin(&self.pool, streams, budget, self.key_retention).await
    }

    /// [`Self::begin_within`], and in the same round trip claims `keys` and loads each
    /// stream from its snapshot of `shape`: the first step of a command's write.
    pub async fn begin_loading(
        &self,
        streams: &[Uuid],
        budget: Duration,
        keys: &[KeyClaim],
        shape: i32,
    ) -> Result<(UnitOfWork, Vec<Claim>, HashMap<Uuid, Loaded>), StoreError> {
        UnitOfWork::begin_loading(&self.pool, streams, budget, self.key_retention, keys, shape)
            .await
    }

    /// Appends the first events of streams that do not exist yet, in one transaction and
    /// one round trip; [`AppendError::Conflict`] (and nothing written) if one exists.
    pub async fn create_streams(
        &self,
        events: &[StreamEvent<'_>],
        budget: Duration,
    ) -> Result<Vec<i64>, AppendError> {
        UnitOfWork::create_streams(&self.pool, budget, self.key_retention, events).await
    }

    /// How long a caller may wait for a connection before the store is `Unavailable`.
    pub fn wait_timeout(&self) -> Duration {
        crate::pool::wait_timeout(&self.pool)
    }

    /// Cheap liveness probe of the database, for readiness checks.
    /// The stream's last version (0: no such stream).
    pub async fn stream_version(&self, stream_id: Uuid) -> Result<u32, StoreError> {
        const LAST: &str =
            "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1";
        let client = self.client().await?;
        let statement = client.prepare_cached(LAST).await?;
        let row = client.query_one(&statement, &[&stream_id]).await?;
        crate::rows::stream_version(&row, 0)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = crate::pool::acquire(&self.pool).await?;
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
        Cut::Both(position, time) => (i32::MAX, position, time),
    };
    let statement = client.prepare_cached(LOAD_STREAM).await?;
    let rows = client.query(&statement, &[&stream_id, &version, &position, &time]).await?;
    rows.iter().map(recorded_event).collect()
}
