//! Exactly-once application with self-healing, for any projection.

use deadpool_postgres::Transaction;
use eventstore::envelope::Envelope;
use eventstore::Cut;
use uuid::Uuid;

use crate::{ApplyError, ProjectedEvent, Projection};

const LAST_VERSION: &str = "
    SELECT stream_version FROM projection_streams
     WHERE projection = $1 AND stream_id = $2 FOR UPDATE";
const RECORD_VERSION: &str = "
    INSERT INTO projection_streams (projection, stream_id, stream_version) VALUES ($1, $2, $3)
    ON CONFLICT (projection, stream_id) DO UPDATE SET stream_version = EXCLUDED.stream_version";
const RECORD_PROGRESS: &str = "
    INSERT INTO projection_status (projection, applied_events, last_position, last_applied_at, updated_at)
    VALUES ($1, $2, $3, now(), now())
    ON CONFLICT (projection) DO UPDATE
       SET applied_events = projection_status.applied_events + EXCLUDED.applied_events,
           last_position = GREATEST(projection_status.last_position, EXCLUDED.last_position),
           last_applied_at = now(), updated_at = now()";

/// What happened to one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied, after `healed` missing earlier versions were applied from the store.
    Applied { healed: u32 },
    /// Already applied before: nothing changed.
    Duplicate,
}

/// Decodes a Kafka message value into a projected event (upcasting old versions).
pub fn decode(payload: &[u8]) -> Result<ProjectedEvent, ApplyError> {
    let envelope: Envelope<serde_json::Value> =
        serde_json::from_slice(payload).map_err(|e| ApplyError::Undecodable(e.to_string()))?;
    let event =
        eventstore::schema::decode(&envelope.event_type, envelope.event_version, &envelope.data)
            .map_err(|e| ApplyError::Undecodable(e.to_string()))?;
    Ok(ProjectedEvent {
        event_id: envelope.event_id,
        stream_id: envelope.stream_id,
        stream_version: envelope.stream_version,
        position: envelope.position,
        recorded_at: envelope.recorded_at,
        event,
    })
}

/// Applies `event` through `projection` unless it was applied before; applies missing
/// earlier versions from the event store first.
pub async fn apply<P: Projection>(
    transaction: &Transaction<'_>,
    projection: &P,
    event: &ProjectedEvent,
) -> Result<Applied, ApplyError> {
    let name = projection.name();
    let last = last_version(transaction, name, event.stream_id).await?;
    if event.stream_version <= last {
        return Ok(Applied::Duplicate);
    }
    let mut healed = 0;
    if event.stream_version > last + 1 {
        let missing = eventstore::load_stream(
            transaction,
            event.stream_id,
            Cut::Version(event.stream_version - 1),
        )
        .await?;
        for recorded in missing.into_iter().filter(|e| e.stream_version > last) {
            let earlier = ProjectedEvent {
                event_id: recorded.event_id,
                stream_id: recorded.stream_id,
                stream_version: recorded.stream_version,
                position: recorded.global_position,
                recorded_at: recorded.recorded_at,
                event: recorded.decode()?,
            };
            projection.apply(transaction, &earlier).await?;
            healed += 1;
        }
        tracing::info!(projection = name, stream_id = %event.stream_id, healed, "applied missing events from the store");
    }
    projection.apply(transaction, event).await?;
    let version = i32::try_from(event.stream_version).unwrap_or(i32::MAX);
    transaction.execute(RECORD_VERSION, &[&name, &event.stream_id, &version]).await?;
    Ok(Applied::Applied { healed })
}

/// Adds to the projection's progress counters (once per batch).
pub async fn record_progress(
    transaction: &Transaction<'_>,
    projection: &str,
    applied: i64,
    last_position: Option<i64>,
) -> Result<(), ApplyError> {
    transaction.execute(RECORD_PROGRESS, &[&projection, &applied, &last_position]).await?;
    Ok(())
}

async fn last_version(
    transaction: &Transaction<'_>,
    projection: &str,
    stream_id: Uuid,
) -> Result<u32, ApplyError> {
    let row = transaction.query_opt(LAST_VERSION, &[&projection, &stream_id]).await?;
    Ok(row.map_or(0, |row| u32::try_from(row.get::<_, i32>(0)).unwrap_or_default()))
}

/// The version of `stream_id` the projection has applied, for read-your-writes.
pub async fn applied_version(
    client: &impl deadpool_postgres::GenericClient,
    projection: &str,
    stream_id: Uuid,
) -> Result<u32, ApplyError> {
    let row = client
        .query_opt("SELECT stream_version FROM projection_streams WHERE projection = $1 AND stream_id = $2", &[&projection, &stream_id])
        .await?;
    Ok(row.map_or(0, |row| u32::try_from(row.get::<_, i32>(0)).unwrap_or_default()))
}
