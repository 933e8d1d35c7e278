//! The message published for each event: key = order id, value = this JSON envelope,
//! plus headers (`event-type`, `event-version`, `correlation-id`, `content-type`). This is
//! the contract outside consumers read, whatever the broker.

use chrono::{DateTime, Utc};
use eventstore::position::CommittedEvent;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

pub const HEADER_EVENT_TYPE: &str = "event-type";
pub const HEADER_EVENT_VERSION: &str = "event-version";
pub const HEADER_CORRELATION_ID: &str = "correlation-id";
pub const HEADER_CONTENT_TYPE: &str = "content-type";
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// On a bus whose messages have no key of their own (NATS, RabbitMQ): the key, the order
/// id. Kafka carries it as the record's key.
pub const HEADER_KEY: &str = "key";

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

/// One message, ready for any broker: the key, the value and the headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The event's id: what a broker that deduplicates keys its window on (JetStream's
    /// `Nats-Msg-Id`, RabbitMQ's `message_id`).
    pub id: Uuid,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// The message published for `event`: its envelope as JSON (the stored data embedded as
/// it is) and the headers.
pub fn encode(event: &CommittedEvent) -> Result<Message, serde_json::Error> {
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
    let mut headers = vec![
        (HEADER_EVENT_TYPE, event.event_type.clone()),
        (HEADER_EVENT_VERSION, event.event_version.to_string()),
        (HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON.to_owned()),
    ];
    if let Some(correlation_id) = &event.correlation_id {
        headers.push((HEADER_CORRELATION_ID, correlation_id.clone()));
    }
    Ok(Message {
        id: event.event_id,
        key: event.stream_id.to_string(),
        payload: serde_json::to_vec(&envelope)?,
        headers,
    })
}
