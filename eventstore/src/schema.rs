//! The stored shape of events, kept apart from the domain types.
//!
//! `encode` writes the current version of each event type ([`current_version`]); `decode`
//! reads any version ever written and upcasts it to the current domain shape. This is the
//! one place that knows old versions: the API, the relay's readers, the projections and
//! their self-healing all decode through it. When an event's shape changes, its version
//! goes up here and the old version keeps a decoder: stored events are never rewritten, and
//! the relay publishes each one with the version it was stored at.
//!
//! Versions so far:
//!
//! | event | version | shape |
//! |---|---|---|
//! | `OrderPlaced` | 1 | `OrderPlacedV1`: no sales channel; upcast as [`SalesChannel::unknown`] |
//! | `OrderPlaced` | 2 | `OrderPlacedV2`: a sales channel, no payment instruction (upcast as none) |
//! | `OrderPlaced` | 3 | the domain [`OrderPlaced`]: an optional `payment` instruction |
//! | `PaymentCaptured`, `PaymentFailed`, `PaymentRefunded` | 1 | no provider reference (upcast as none) |
//! | `PaymentCaptured`, `PaymentFailed`, `PaymentRefunded` | 2 | the domain type: an optional `provider_reference` |
//! | `OrderCancellationRequested` | 1 | its domain type |
//! | every other event | 1 | its domain type |
//!
//! An old version is read by a struct of exactly its fields (`deny_unknown_fields`): a
//! payload of a newer shape stored under an old version is refused, not read with facts
//! dropped.

use domain::{
    CustomerEmail, CustomerId, Event, Money, OrderCancellationRequested, OrderCancelled,
    OrderFullyPaid, OrderId, OrderLine, OrderPlaced, OrderShipped, PaymentCaptured, PaymentFailed,
    PaymentId, PaymentMethod, PaymentRefunded, Reason, RefundId, SalesChannel,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use uuid::Uuid;

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

/// The version `encode` writes for an event: the newest shape of its type.
pub fn current_version(event: &Event) -> i16 {
    match event {
        Event::OrderPlaced(_) => 3,
        Event::PaymentCaptured(_) | Event::PaymentFailed(_) | Event::PaymentRefunded(_) => 2,
        Event::OrderFullyPaid(_)
        | Event::OrderCancellationRequested(_)
        | Event::OrderCancelled(_)
        | Event::OrderShipped(_) => 1,
    }
}

/// `OrderPlaced` as version 1 stored it, before the sales channel was recorded. Exactly
/// those fields: a payload with more (a newer shape under the wrong version) is refused
/// rather than read with its extra facts dropped.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct OrderPlacedV1 {
    order_id: OrderId,
    customer_id: CustomerId,
    customer_email: CustomerEmail,
    lines: Vec<OrderLine>,
    total: Money,
}

impl From<OrderPlacedV1> for OrderPlaced {
    fn from(v1: OrderPlacedV1) -> Self {
        Self {
            order_id: v1.order_id,
            customer_id: v1.customer_id,
            customer_email: v1.customer_email,
            lines: v1.lines,
            total: v1.total,
            sales_channel: SalesChannel::unknown(),
            payment: None,
        }
    }
}

/// `OrderPlaced` as version 2 stored it, before payment instructions.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct OrderPlacedV2 {
    order_id: OrderId,
    customer_id: CustomerId,
    customer_email: CustomerEmail,
    lines: Vec<OrderLine>,
    total: Money,
    sales_channel: SalesChannel,
}

impl From<OrderPlacedV2> for OrderPlaced {
    fn from(v2: OrderPlacedV2) -> Self {
        Self {
            order_id: v2.order_id,
            customer_id: v2.customer_id,
            customer_email: v2.customer_email,
            lines: v2.lines,
            total: v2.total,
            sales_channel: v2.sales_channel,
            payment: None,
        }
    }
}

/// `PaymentCaptured` as version 1 stored it, before provider references.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PaymentCapturedV1 {
    payment_id: PaymentId,
    amount: Money,
    method: PaymentMethod,
}

impl From<PaymentCapturedV1> for PaymentCaptured {
    fn from(v1: PaymentCapturedV1) -> Self {
        Self {
            payment_id: v1.payment_id,
            amount: v1.amount,
            method: v1.method,
            provider_reference: None,
        }
    }
}

/// `PaymentFailed` as version 1 stored it, before provider references.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PaymentFailedV1 {
    payment_id: PaymentId,
    amount: Money,
    reason: Reason,
}

impl From<PaymentFailedV1> for PaymentFailed {
    fn from(v1: PaymentFailedV1) -> Self {
        Self {
            payment_id: v1.payment_id,
            amount: v1.amount,
            reason: v1.reason,
            provider_reference: None,
        }
    }
}

/// `PaymentRefunded` as version 1 stored it, before provider references.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PaymentRefundedV1 {
    refund_id: RefundId,
    payment_id: PaymentId,
    amount: Money,
    reason: Reason,
}

impl From<PaymentRefundedV1> for PaymentRefunded {
    fn from(v1: PaymentRefundedV1) -> Self {
        Self {
            refund_id: v1.refund_id,
            payment_id: v1.payment_id,
            amount: v1.amount,
            reason: v1.reason,
            provider_reference: None,
        }
    }
}

/// The JSON Schema of one stored shape: what the payload of `event_type` at `event_version`
/// holds, generated from the type that reads it (and, at the current version, writes it).
#[derive(Clone, Debug)]
pub struct EventSchema {
    pub event_type: &'static str,
    pub event_version: i16,
    pub schema: schemars::Schema,
}

/// One entry per event type and version [`decode`] accepts, in the order of its match
/// (by type, then version): the published contract is generated from this list, so a new
/// version added to `decode` must be added here too (a test holds the two together).
pub fn event_schemas() -> Vec<EventSchema> {
    fn entry<T: schemars::JsonSchema>(event_type: &'static str, event_version: i16) -> EventSchema {
        EventSchema { event_type, event_version, schema: schemars::schema_for!(T) }
    }
    vec![
        entry::<OrderPlacedV1>("OrderPlaced", 1),
        entry::<OrderPlacedV2>("OrderPlaced", 2),
        entry::<OrderPlaced>("OrderPlaced", 3),
        entry::<PaymentCapturedV1>("PaymentCaptured", 1),
        entry::<PaymentCaptured>("PaymentCaptured", 2),
        entry::<PaymentFailedV1>("PaymentFailed", 1),
        entry::<PaymentFailed>("PaymentFailed", 2),
        entry::<PaymentRefundedV1>("PaymentRefunded", 1),
        entry::<PaymentRefunded>("PaymentRefunded", 2),
        entry::<OrderCancellationRequested>("OrderCancellationRequested", 1),
        entry::<OrderFullyPaid>("OrderFullyPaid", 1),
        entry::<OrderCancelled>("OrderCancelled", 1),
        entry::<OrderShipped>("OrderShipped", 1),
    ]
}

/// An event about to be appended, encoded by [`encode`].
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub event_version: i16,
    pub payload: serde_json::Value,
}

/// Encodes a domain event for appending, with a fresh id. UUIDv7 ids sort by creation
/// time, which keeps the `event_id` index append-mostly.
pub fn encode(event: &Event) -> Result<NewEvent, serde_json::Error> {
    let payload = match event {
        Event::OrderPlaced(data) => serde_json::to_value(data),
        Event::PaymentCaptured(data) => serde_json::to_value(data),
        Event::PaymentFailed(data) => serde_json::to_value(data),
        Event::PaymentRefunded(data) => serde_json::to_value(data),
        Event::OrderFullyPaid(data) => serde_json::to_value(data),
        Event::OrderCancellationRequested(data) => serde_json::to_value(data),
        Event::OrderCancelled(data) => serde_json::to_value(data),
        Event::OrderShipped(data) => serde_json::to_value(data),
    }?;
    Ok(NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event.event_type(),
        event_version: current_version(event),
        payload,
    })
}

/// Decodes a stored event into its current domain shape.
pub fn decode(
    event_type: &str,
    event_version: i16,
    payload: &serde_json::Value,
) -> Result<Event, SchemaError> {
    decode_from(event_type, event_version, payload)
}

/// [`decode`] from the payload's JSON text, without building a `serde_json::Value` first
/// (about twice as fast, for replays of the whole store).
pub fn decode_str(
    event_type: &str,
    event_version: i16,
    payload: &str,
) -> Result<Event, SchemaError> {
    decode_from(event_type, event_version, payload)
}

/// Where a payload is deserialized from.
trait Payload: Copy {
    fn parse<T: DeserializeOwned>(self) -> Result<T, serde_json::Error>;
}

impl Payload for &serde_json::Value {
    fn parse<T: DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        T::deserialize(self)
    }
}

impl Payload for &str {
    fn parse<T: DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self)
    }
}

fn decode_from(
    event_type: &str,
    event_version: i16,
    payload: impl Payload,
) -> Result<Event, SchemaError> {
    fn data<T: DeserializeOwned>(
        (event_type, event_version, payload): (&str, i16, impl Payload),
    ) -> Result<T, SchemaError> {
        payload.parse().map_err(|source| SchemaError::Payload {
            event_type: event_type.to_owned(),
            event_version,
            source,
        })
    }
    let p = (event_type, event_version, payload);
    Ok(match (event_type, event_version) {
        ("OrderPlaced", 1) => Event::OrderPlaced(data::<OrderPlacedV1>(p)?.into()),
        ("OrderPlaced", 2) => Event::OrderPlaced(data::<OrderPlacedV2>(p)?.into()),
        ("OrderPlaced", 3) => Event::OrderPlaced(data(p)?),
        ("PaymentCaptured", 1) => Event::PaymentCaptured(data::<PaymentCapturedV1>(p)?.into()),
        ("PaymentCaptured", 2) => Event::PaymentCaptured(data(p)?),
        ("PaymentFailed", 1) => Event::PaymentFailed(data::<PaymentFailedV1>(p)?.into()),
        ("PaymentFailed", 2) => Event::PaymentFailed(data(p)?),
        ("PaymentRefunded", 1) => Event::PaymentRefunded(data::<PaymentRefundedV1>(p)?.into()),
        ("PaymentRefunded", 2) => Event::PaymentRefunded(data(p)?),
        ("OrderCancellationRequested", 1) => Event::OrderCancellationRequested(data(p)?),
        ("OrderFullyPaid", 1) => Event::OrderFullyPaid(data(p)?),
        ("OrderCancelled", 1) => Event::OrderCancelled(data(p)?),
        ("OrderShipped", 1) => Event::OrderShipped(data(p)?),
        _ => return Err(SchemaError::Unknown { event_type: event_type.to_owned(), event_version }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed shape is one `decode` knows, and `decode` knows no other: an empty
    /// payload is refused as a bad payload for a listed version, as unknown just above one.
    #[test]
    fn event_schemas_list_exactly_the_versions_decode_reads() {
        let empty = serde_json::json!({});
        let schemas = event_schemas();
        for listed in &schemas {
            let known = decode(listed.event_type, listed.event_version, &empty);
            assert!(
                matches!(known, Err(SchemaError::Payload { .. })),
                "{} v{} is listed but decode does not read it",
                listed.event_type,
                listed.event_version
            );
            let listed_next = schemas.iter().any(|s| {
                s.event_type == listed.event_type && s.event_version == listed.event_version + 1
            });
            if !listed_next {
                let next = decode(listed.event_type, listed.event_version + 1, &empty);
                assert!(
                    matches!(next, Err(SchemaError::Unknown { .. })),
                    "{} v{} is read by decode but not listed",
                    listed.event_type,
                    listed.event_version + 1
                );
            }
            assert!(
                listed.event_version == 1
                    || schemas.iter().any(|s| {
                        s.event_type == listed.event_type
                            && s.event_version == listed.event_version - 1
                    }),
                "versions of {} are listed without a gap",
                listed.event_type
            );
        }
        let types: std::collections::BTreeSet<_> = schemas.iter().map(|s| s.event_type).collect();
        assert_eq!(types.len(), 8, "every event type is listed: {types:?}");
    }
}
