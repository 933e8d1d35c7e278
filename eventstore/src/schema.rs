//! The stored shape of events, kept apart from the domain types.
//!
//! `encode` writes the current version of each event; `decode` reads any version ever
//! written and upcasts it to the current domain shape. When an event's shape changes, its
//! version goes up here and the old version keeps a decoder: stored events are never
//! rewritten.

use domain::Event;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::NewEvent;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("unknown event type {event_type} version {event_version}")]
    Unknown { event_type: String, event_version: i16 },
    #[error("payload does not match {event_type} version {event_version}")]
    Payload {
        event_type: String,
        event_version: i16,
        #[source]
        source: serde_json::Error,
    },
}

/// The current version of every event type.
pub const CURRENT_VERSION: i16 = 1;

/// Encodes a domain event for appending, with a fresh id. UUIDv7 ids sort by creation
/// time, which keeps the `event_id` index append-mostly.
pub fn encode(event: &Event) -> Result<NewEvent, serde_json::Error> {
    let payload = match event {
        Event::OrderPlaced(data) => serde_json::to_value(data),
        Event::PaymentCaptured(data) => serde_json::to_value(data),
        Event::PaymentFailed(data) => serde_json::to_value(data),
        Event::PaymentRefunded(data) => serde_json::to_value(data),
        Event::OrderFullyPaid(data) => serde_json::to_value(data),
        Event::OrderCancelled(data) => serde_json::to_value(data),
        Event::OrderShipped(data) => serde_json::to_value(data),
    }?;
    Ok(NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event.event_type(),
        event_version: CURRENT_VERSION,
        payload,
    })
}

/// Decodes a stored event into its current domain shape.
pub fn decode(
    event_type: &str,
    event_version: i16,
    payload: &serde_json::Value,
) -> Result<Event, SchemaError> {
    fn data<T: DeserializeOwned>(
        event_type: &str,
        event_version: i16,
        payload: &serde_json::Value,
    ) -> Result<T, SchemaError> {
        T::deserialize(payload).map_err(|source| SchemaError::Payload {
            event_type: event_type.to_owned(),
            event_version,
            source,
        })
    }
    Ok(match (event_type, event_version) {
        ("OrderPlaced", 1) => Event::OrderPlaced(data(event_type, event_version, payload)?),
        ("PaymentCaptured", 1) => Event::PaymentCaptured(data(event_type, event_version, payload)?),
        ("PaymentFailed", 1) => Event::PaymentFailed(data(event_type, event_version, payload)?),
        ("PaymentRefunded", 1) => Event::PaymentRefunded(data(event_type, event_version, payload)?),
        ("OrderFullyPaid", 1) => Event::OrderFullyPaid(data(event_type, event_version, payload)?),
        ("OrderCancelled", 1) => Event::OrderCancelled(data(event_type, event_version, payload)?),
        ("OrderShipped", 1) => Event::OrderShipped(data(event_type, event_version, payload)?),
        _ => return Err(SchemaError::Unknown { event_type: event_type.to_owned(), event_version }),
    })
}
