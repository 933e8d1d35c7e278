//! The message published for each event: key = order id, value = this JSON envelope,
//! plus headers (`event-type`, `event-version`, `correlation-id`, `content-type`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::position::CommittedEvent;

pub const HEADER_EVENT_TYPE: &str = "event-type";
pub const HEADER_EVENT_VERSION: &str = "event-version";
pub const HEADER_CORRELATION_ID: &str = "correlation-id";
pub const HEADER_CONTENT_TYPE: &str = "content-type";

/// `D` is the event's data: raw JSON when publishing (no re-parsing), a value or a typed
/// event when consuming.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope<D> {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: i16,
    pub stream_id: Uuid,
    pub stream_version: u32,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub data: D,
}

/// The message value published for `event`: its envelope as JSON, the stored data
/// embedded as it is.
pub fn encode(event: &CommittedEvent) -> Result<Vec<u8>, serde_json::Error> {
    let envelope = Envelope {
        event_id: event.event_id,
        event_type: event.event_type.clone(),
        event_version: event.event_version,
        stream_id: event.stream_id,
        stream_version: event.stream_version,
        position: event.commit.global_position,
        recorded_at: event.recorded_at,
        correlation_id: event.correlation_id.clone(),
        causation_id: event.causation_id.clone(),
        data: RawValue::from_string(event.payload.clone())?,
    };
    serde_json::to_vec(&envelope)
}
