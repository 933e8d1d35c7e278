//! Aggregate snapshots: a stream's folded state after some version, stored as JSON with
//! the version of its shape, so loading a long stream costs a snapshot and a short tail.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Statement;
use uuid::Uuid;

use crate::error::StoreError;
use crate::recorded::RecordedEvent;
use crate::rows::{recorded_event, stream_version, to_stored_version};

/// A snapshot is taken whenever an append crosses a multiple of this many events.
pub const SNAPSHOT_EVERY: u32 = 100;

/// A stored state and the version it was taken at.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub stream_version: u32,
    pub state: serde_json::Value,
}

/// A state to store: the stream, the version it was taken at, and the state.
#[derive(Clone, Debug)]
pub struct SnapshotState {
    pub stream_id: Uuid,
    pub stream_version: u32,
    pub state: serde_json::Value,
}

/// What loading a stream from its snapshot gives: the snapshot (if one of this shape
/// exists) and the events after it.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<RecordedEvent>,
}

const SNAPSHOTS: &str = "
    SELECT stream_id, stream_version, state FROM snapshots
     WHERE stream_id = ANY($1) AND shape_version = $2";
/// Each stream's events after its snapshot of shape `$2` (all of them without one): a range
/// scan of the `(stream_id, stream_version)` index per stream, so the length of the history
/// before the snapshot costs nothing. It finds the snapshot's version itself, so that it
/// need not wait for [`SNAPSHOTS`]: both go to the server together (the streams' locks are
/// held, so no snapshot of theirs changes in between).
const TAILS: &str = concat!(
    "SELECT ",
    crate::rows::event_columns!(),
    "
      FROM unnest($1::uuid[]) AS t (wanted)
      JOIN LATERAL (
            SELECT * FROM events
             WHERE stream_id = t.wanted
               AND stream_version > coalesce(
                       (SELECT stream_version FROM snapshots
                         WHERE stream_id = t.wanted AND shape_version = $2), 0)
             ORDER BY stream_version) e ON true
     ORDER BY e.stream_id, e.stream_version"
);
const SAVE: &str = "
    INSERT INTO snapshots (stream_id, stream_version, shape_version, state)
    SELECT * FROM unnest($1::uuid[], $2::int4[], $3::int4[], $4::jsonb[])
    ON CONFLICT (stream_id) DO UPDATE
       SET stream_version = EXCLUDED.stream_version, shape_version = EXCLUDED.shape_version,
           state = EXCLUDED.state, taken_at = now()
     WHERE snapshots.stream_version < EXCLUDED.stream_version
        OR snapshots.shape_version <> EXCLUDED.shape_version";

/// Each stream's snapshot of `shape` (if any) and the events after it.
pub async fn load_from_snapshots(
    client: &impl GenericClient,
    streams: &[Uuid],
    shape: i32,
) -> Result<HashMap<Uuid, Loaded>, StoreError> {
    Statements::prepare(client).await?.load(client, streams, shape).await
}

/// Stores states of `shape`, replacing older snapshots.
pub async fn save_snapshots(
    client: &impl GenericClient,
    shape: i32,
    states: &[SnapshotState],
) -> Result<(), StoreError> {
    Statements::prepare(client).await?.save(client, shape, states).await
}

/// The snapshot statements, prepared: a caller that pipelines them behind other requests
/// prepares first, so that nothing waits between its requests and they reach the server
/// in the order they were made.
pub(crate) struct Statements {
    snapshots: Statement,
    tails: Statement,
    save: Statement,
}

impl Statements {
    pub(crate) async fn prepare(client: &impl GenericClient) -> Result<Self, StoreError> {
        Ok(Self {
            snapshots: client.prepare_cached(SNAPSHOTS).await?,
            tails: client.prepare_cached(TAILS).await?,
            save: client.prepare_cached(SAVE).await?,
        })
    }

    /// Each stream's snapshot of `shape` (if any) and the events after it. Both requests
    /// are sent when first polled: one round trip.
    pub(crate) async fn load(
        &self,
        client: &impl GenericClient,
        streams: &[Uuid],
        shape: i32,
    ) -> Result<HashMap<Uuid, Loaded>, StoreError> {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&streams, &shape];
        let (snapshot_rows, tail_rows) = tokio::try_join!(
            client.query(&self.snapshots, &params),
            client.query(&self.tails, &params)
        )?;
        let mut loaded: HashMap<Uuid, Loaded> = HashMap::new();
        for row in snapshot_rows {
            loaded.entry(row.try_get(0)?).or_default().snapshot =
                Some(Snapshot { stream_version: stream_version(&row, 1)?, state: row.try_get(2)? });
        }
        for row in tail_rows {
            let event = recorded_event(&row)?;
            loaded.entry(event.stream_id).or_default().events.push(event);
        }
        Ok(loaded)
    }

    /// Stores states of `shape`, replacing older snapshots; sent when first polled.
    pub(crate) async fn save(
        &self,
        client: &impl GenericClient,
        shape: i32,
        states: &[SnapshotState],
    ) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let streams: Vec<Uuid> = states.iter().map(|s| s.stream_id).collect();
        let versions: Vec<i32> =
            states.iter().map(|s| to_stored_version(s.stream_version)).collect::<Result<_, _>>()?;
        let shapes: Vec<i32> = vec![shape; states.len()];
        let values: Vec<&serde_json::Value> = states.iter().map(|s| &s.state).collect();
        client.execute(&self.save, &[&streams, &versions, &shapes, &values]).await?;
        Ok(())
    }
}

/// Whether an append from `before` to `after` crosses a snapshot point.
pub fn crosses_snapshot_point(before: u32, after: u32) -> bool {
    after / SNAPSHOT_EVERY > before / SNAPSHOT_EVERY
}
