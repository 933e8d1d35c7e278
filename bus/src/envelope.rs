//! The message published for each event: key = order id, value = this JSON envelope,
//! plus headers (`event-type`, `event-version`, `correlation-id`, `traceparent`,
//! `content-type`). This is the contract outside consumers read, whatever the broker.

use chrono::{DateTime, Utc};
use eventstore::position::CommittedRow;
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

/// The message published for `event`: its envelope as JSON (the stored data embedded as
/// it is) and the headers.
///
/// The data is spliced in as text: PostgreSQL rendered it from `jsonb`, so it is valid
/// JSON, and the relay does not parse every payload again to prove it. The fields before
/// it are written as [`Envelope`] writes them (same names, same order, byte for byte: a
/// test holds the two together), directly: the relay encodes every event it publishes, and
/// serde's path through `Display` for the ids and the timestamp was most of that cost
/// (numbers go through serde_json, which writes them in place without a `String`).
pub fn encode(row: &CommittedRow<'_>) -> Result<Message, serde_json::Error> {
    let event = &row.event;
    let mut payload = Vec::with_capacity(320 + event.payload.len());
    let mut uuid = Uuid::encode_buffer();
    payload.extend_from_slice(b"{\"event_id\":\"");
    payload.extend_from_slice(event.event_id.hyphenated().encode_lower(&mut uuid).as_bytes());
    payload.extend_from_slice(b"\",\"event_type\":");
    serde_json::to_writer(&mut payload, event.event_type)?;
    payload.extend_from_slice(b",\"event_version\":");
    serde_json::to_writer(&mut payload, &event.event_version)?;
    payload.extend_from_slice(b",\"stream_id\":\"");
    let key = event.stream_id.hyphenated().encode_lower(&mut uuid).to_owned();
    payload.extend_from_slice(key.as_bytes());
    payload.extend_from_slice(b"\",\"stream_version\":");
    serde_json::to_writer(&mut payload, &event.stream_version)?;
    payload.extend_from_slice(b",\"position\":");
    serde_json::to_writer(&mut payload, &event.commit.global_position)?;
    payload.extend_from_slice(b",\"recorded_at\":");
    write_timestamp(&mut payload, event.recorded_at)?;
    payload.extend_from_slice(b",\"correlation_id\":");
    serde_json::to_writer(&mut payload, &row.correlation_id)?;
    payload.extend_from_slice(b",\"causation_id\":");
    serde_json::to_writer(&mut payload, &row.causation_id)?;
    payload.extend_from_slice(b",\"data\":");
    payload.extend_from_slice(event.payload.as_bytes());
    payload.push(b'}');
    let mut headers = vec![
        (HEADER_EVENT_TYPE, event.event_type.to_owned()),
        (HEADER_EVENT_VERSION, event.event_version.to_string()),
        (HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON.to_owned()),
    ];
    if let Some(correlation_id) = row.correlation_id {
        headers.push((HEADER_CORRELATION_ID, correlation_id.to_owned()));
    }
    if let Some(traceparent) = row.traceparent {
        headers.push((HEADER_TRACEPARENT, traceparent.to_owned()));
    }
    Ok(Message { id: event.event_id, key, payload, headers })
}

/// `at` as a JSON string, as chrono's serde writes it: RFC 3339 in UTC with `Z`, the
/// fraction of a second in 0, 3, 6 or 9 digits as it needs. Years outside 0–9999 (which
/// chrono writes with a sign) are left to chrono.
fn write_timestamp(out: &mut Vec<u8>, at: DateTime<Utc>) -> Result<(), serde_json::Error> {
    use chrono::{Datelike, Timelike};
    let year = at.year();
    let nanos = at.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return serde_json::to_writer(out, &at);
    }
    let digits = |out: &mut Vec<u8>, value: u32, width: u32| {
        for place in (0..width).rev() {
            // `% 10` keeps it a digit: the narrowing cannot lose anything.
            out.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
        }
    };
    out.push(b'"');
    digits(out, year.unsigned_abs(), 4);
    let (date, time) = (at.date_naive(), at.time());
    for (separator, value) in [
        (b'-', date.month()),
        (b'-', date.day()),
        (b'T', time.hour()),
        (b':', time.minute()),
        (b':', time.second()),
    ] {
        out.push(separator);
        digits(out, value, 2);
    }
    if nanos != 0 {
        out.push(b'.');
        if nanos.is_multiple_of(1_000_000) {
            digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            digits(out, nanos / 1_000, 6);
        } else {
            digits(out, nanos, 9);
        }
    }
    out.extend_from_slice(b"Z\"");
    Ok(())
}

#[cfg(test)]
mod tests {
    use eventstore::position::{CommitPosition, CommittedEvent};
    use proptest::prelude::*;
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
            let message = encode(&event.borrow())?;
            let written = written_by_serde(&event)?;
            assert_eq!(String::from_utf8(message.payload)?, String::from_utf8(written)?);
        }
        Ok(())
    }

    #[test]
    fn the_key_is_the_order_and_the_headers_describe_the_event() -> Result {
        let message = encode(&event(Some("req-1")).borrow())?;
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

    /// What the envelope type writes for `event`.
    fn written_by_serde(event: &CommittedEvent) -> std::result::Result<Vec<u8>, serde_json::Error> {
        let data = RawValue::from_string(event.payload.clone())?;
        serde_json::to_vec(&Envelope {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            event_version: event.event_version,
            stream_id: event.stream_id,
            stream_version: event.stream_version,
            position: event.commit.global_position,
            recorded_at: event.recorded_at,
            correlation_id: event.correlation_id.clone(),
            causation_id: event.causation_id.clone(),
            data,
        })
    }

    proptest! {
        /// Any ids, any text in the string fields (quotes, controls, non-ASCII), any
        /// instant chrono can hold at any precision: the same bytes as serde writes.
        #[test]
        fn any_event_is_written_as_serde_writes_its_envelope(
            ids in any::<(u128, u128)>(),
            versions in any::<(i16, u32, i64)>(),
            event_type in any::<String>(),
            correlation_id in proptest::option::of(any::<String>()),
            causation_id in proptest::option::of(any::<String>()),
            seconds in -100_000_000_000i64..400_000_000_000,
            nanos in prop_oneof![Just(0u32), (0u32..1_000).prop_map(|n| n * 1_000_000),
                (0u32..1_000_000).prop_map(|n| n * 1_000), 0u32..1_000_000_000],
        ) {
            let recorded_at = DateTime::from_timestamp(seconds, nanos).unwrap_or_default();
            let event = CommittedEvent {
                commit: CommitPosition { tx_id: 1, global_position: versions.2 },
                stream_id: Uuid::from_u128(ids.0),
                stream_version: versions.1,
                event_id: Uuid::from_u128(ids.1),
                event_type,
                event_version: versions.0,
                payload: r#"{"k":[1,"two",null]}"#.to_owned(),
                correlation_id,
                causation_id,
                traceparent: None,
                recorded_at,
            };
            let failed = |error: serde_json::Error| TestCaseError::fail(error.to_string());
            let message = encode(&event.borrow()).map_err(failed)?;
            let expected = written_by_serde(&event).map_err(failed)?;
            prop_assert_eq!(String::from_utf8_lossy(&message.payload), String::from_utf8_lossy(&expected));
        }
    }
}
