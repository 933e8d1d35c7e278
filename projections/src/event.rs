//! One event as a read model sees it, from wherever it came: a message on the bus, a
//! stream load (self-healing), or a replay of the whole store (a rebuild).

use bus::envelope::Envelope;
use chrono::{DateTime, Utc};
use eventstore::position::ReplayedEvent;
use eventstore::RecordedEvent;
use uuid::Uuid;

use crate::error::ApplyError;

/// One event as a projection sees it: decoded to the current domain shape.
#[derive(Clone, Debug)]
pub struct ProjectedEvent {
    pub event_id: Uuid,
    pub stream_id: Uuid,
    pub stream_version: u32,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub event: domain::Event,
}

impl ProjectedEvent {
    /// From a message's value (the published envelope), upcasting old versions.
    pub fn from_message(payload: &[u8]) -> Result<Self, ApplyError> {
        let envelope: Envelope<serde_json::Value> =
            serde_json::from_slice(payload).map_err(|e| ApplyError::Undecodable(e.to_string()))?;
        let event = eventstore::schema::decode(
            &envelope.event_type,
            envelope.event_version,
            &envelope.data,
        )
        .map_err(|e| ApplyError::Undecodable(e.to_string()))?;
        Ok(Self {
            event_id: envelope.event_id,
            stream_id: envelope.stream_id,
            stream_version: envelope.stream_version,
            position: envelope.position,
            recorded_at: envelope.recorded_at,
            event,
        })
    }

    /// From the store, as a stream load reads it.
    pub fn from_recorded(recorded: &RecordedEvent) -> Result<Self, ApplyError> {
        Ok(Self {
            event_id: recorded.event_id,
            stream_id: recorded.stream_id,
            stream_version: recorded.stream_version,
            position: recorded.global_position,
            recorded_at: recorded.recorded_at,
            event: recorded.decode()?,
        })
    }

    /// From the store, as a replay of the whole history reads it.
    pub fn from_replayed(replayed: &ReplayedEvent<'_>) -> Result<Self, ApplyError> {
        let event = eventstore::schema::decode_str(
            replayed.event_type,
            replayed.event_version,
            replayed.payload,
        )
        .map_err(|e| ApplyError::Undecodable(e.to_string()))?;
        Ok(Self {
            event_id: replayed.event_id,
            stream_id: replayed.stream_id,
            stream_version: replayed.stream_version,
            position: replayed.commit.global_position,
            recorded_at: replayed.recorded_at,
            event,
        })
    }
}
