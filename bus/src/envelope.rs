//! The message published for each event: key = order id, value = this JSON envelope,
//! plus headers (`event-type`, `event-version`, `correlation-id`, `traceparent`,
//! `content-type`). This is the contract outside consumers read, whatever the broker.

use chrono::{DateTime, Utc};
use eventstore::position::CommittedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const HEADER_EVENT_TYPE: &str = "event-type";
pub const HEADER_EVENT_VERSION: &str = "event-version";
pub const HEADER_CORRELATION_ID: &str = "correlation-id";
/// The W3C trace context the event was appended in (its stored `metadata.traceparent`),
/// for a consumer to continue the trace; absent for events stored without one.
pub const HEADER_TRACEPARENT: &str = "traceparent";
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

/// The envelope's fields before `data`, as [`Envelope`] writes them (same names, same
/// order), borrowed from the event.
#[derive(Serialize)]
struct Head<'a> {
    event_id: Uuid,
    event_type: &'a str,
    event_version: i16,
    stream_id: Uuid,
    stream_version: u32,
    position: i64,
    recorded_at: DateTime<Utc>,
    correlation_id: Option<&'a str>,
    causation_id: Option<&'a str>,
}

/// The message published for `event`: its envelope as JSON (the stored data embedded as
/// it is) and the headers.
///
/// The data is spliced in as text: PostgreSQL rendered it from `jsonb`, so it is valid
/// JSON, and the relay does not parse every payload again to prove it.
pub fn encode(event: &CommittedEvent) -> Result<Message, serde_json::Error> {
    let head = Head {
        event_id: event.event_id,
        event_type: &event.event_type,
        event_version: event.event_version,
        stream_id: event.stream_id,
        stream_version: event.stream_version,
        position: event.commit.global_position,
        recorded_at: event.recorded_at,
        correlation_id: event.correlation_id.as_deref(),
        causation_id: event.causation_id.as_deref(),
    };
    let mut payload = Vec::with_capacity(320 + event.payload.len());
    serde_json::to_writer(&mut payload, &head)?;
    // `{…}` becomes `{…,"data":<payload>}`.
    payload.pop();
    payload.extend_from_slice(b",\"data\":");
    payload.extend_from_slice(event.payload.as_bytes());
    payload.push(b'}');
    let mut headers = vec![
        (HEADER_EVENT_TYPE, event.event_type.clone()),
        (HEADER_EVENT_VERSION, event.event_version.to_string()),
        (HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON.to_owned()),
    ];
    if let Some(correlation_id) = &event.correlation_id {
        headers.push((HEADER_CORRELATION_ID, correlation_id.clone()));
    }
    if let Some(traceparent) = &event.traceparent {
        headers.push((HEADER_TRACEPARENT, traceparent.clone()));
    }
    Ok(Message { id: event.event_id, key: event.stream_id.to_string(), payload, headers })
}

#[cfg(test)]
mod tests {
    use eventstore::position::CommitPosition;
    use serde_json::value::RawValue;

    use super::*;

    type Result = std::result::Result<(), Box<dyn std::error::Error>>;

    fn event(correlation_id: Option<&str>) -> CommittedEvent {
        CommittedEvent {
            commit: CommitPosition { tx_id: 7, global_position: 42 },
            stream_id: Uuid::from_u128(1),
            stream_version: 3,
            event_id: Uuid::from_u128(2),
            event_type: "PaymentCaptured".to_owned(),
            event_version: 2,
            payload: r#"{"amount": {"minor": 700, "currency": "EUR"}, "note": "\"quoted\" é"}"#
                .to_owned(),
            correlation_id: correlation_id.map(str::to_owned),
            causation_id: Some("cmd-1".to_owned()),
            traceparent: None,
            recorded_at: DateTime::from_timestamp(1_796_040_000, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn the_spliced_envelope_is_byte_for_byte_what_the_envelope_type_writes() -> Result {
        for correlation_id in [None, Some("req-\"1\"")] {
            let event = event(correlation_id);
            let message = encode(&event)?;
            let written = serde_json::to_vec(&Envelope {
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
            })?;
            assert_eq!(String::from_utf8(message.payload)?, String::from_utf8(written)?);
        }
        Ok(())
    }

    #[test]
    fn the_key_is_the_order_and_the_headers_describe_the_event() -> Result {
        let message = encode(&event(Some("req-1")))?;
        assert_eq!(message.key, Uuid::from_u128(1).to_string());
        assert_eq!(message.id, Uuid::from_u128(2));
        assert_eq!(
            message.headers,
            vec![
                (HEADER_EVENT_TYPE, "PaymentCaptured".to_owned()),
                (HEADER_EVENT_VERSION, "2".to_owned()),
                (HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON.to_owned()),
                (HEADER_CORRELATION_ID, "req-1".to_owned()),
            ]
        );
        Ok(())
    }
}
