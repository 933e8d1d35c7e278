//! Response bodies. Amounts are integers in minor units; names are snake_case.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use commands::Accepted;
use domain::{Fulfilment, PlacedOrder};
use eventstore::RecordedEvent;

/// The answer to an accepted command (201).
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandAccepted {
    pub order_id: Uuid,
    pub stream_version: u32,
    pub position: i64,
    pub events: Vec<AppendedEventView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppendedEventView {
    pub event_id: Uuid,
    pub event_type: String,
    pub stream_version: u32,
    pub position: i64,
}

impl From<Accepted> for CommandAccepted {
    fn from(accepted: Accepted) -> Self {
        Self {
            order_id: accepted.order_id,
            stream_version: accepted.stream_version,
            position: accepted.position,
            events: accepted
                .events
                .into_iter()
                .map(|event| AppendedEventView {
                    event_id: event.event_id,
                    event_type: event.event_type,
                    stream_version: event.stream_version,
                    position: event.position,
                })
                .collect(),
        }
    }
}

/// `GET /v1/orders/{id}`: the aggregate's state, rebuilt from its events.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub order_id: Uuid,
    pub customer_id: String,
    pub customer_email: String,
    /// Where the order came from; `unknown` for orders placed before it was recorded.
    pub sales_channel: String,
    pub currency: &'static str,
    pub lines: Vec<LineView>,
    pub total_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub outstanding_minor: i64,
    pub fully_paid: bool,
    /// `open`, `cancelling` (a cancellation with refund is under way), `cancelled` or
    /// `shipped`.
    pub status: &'static str,
    /// How the payment service charges the order: its payment method id, when the order
    /// was placed with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
    pub payments: Vec<PaymentView>,
    pub failed_payment_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipment: Option<ShipmentView>,
    pub stream_version: u32,
    pub position: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LineView {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
    pub subtotal_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    pub payment_id: String,
    pub method: String,
    /// The payment provider's id of the charge, when one was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<String>,
    pub captured_minor: i64,
    pub refunded_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentView {
    pub carrier: String,
    pub tracking_number: String,
}

impl OrderView {
    pub fn new(order: &PlacedOrder, stream_version: u32, position: i64) -> Self {
        let (status, cancellation_reason, shipment) = match &order.fulfilment {
            Fulfilment::Open => ("open", None, None),
            Fulfilment::Cancelling { reason } => ("cancelling", Some(reason.to_string()), None),
            Fulfilment::Cancelled { reason } => ("cancelled", Some(reason.to_string()), None),
            Fulfilment::Shipped { carrier, tracking_number } => (
                "shipped",
                None,
                Some(ShipmentView {
                    carrier: carrier.to_string(),
                    tracking_number: tracking_number.to_string(),
                }),
            ),
        };
        Self {
            order_id: order.order_id.as_uuid(),
            customer_id: order.customer_id.to_string(),
            customer_email: order.customer_email.to_string(),
            sales_channel: order.sales_channel.to_string(),
            currency: order.currency().code(),
            lines: order
                .lines
                .iter()
                .map(|line| LineView {
                    sku: line.sku.to_string(),
                    quantity: line.quantity,
                    unit_price_minor: line.unit_price.amount_minor(),
                    // Checked when the order was placed; cannot overflow here.
                    subtotal_minor: line
                        .unit_price
                        .amount_minor()
                        .saturating_mul(i64::from(line.quantity)),
                })
                .collect(),
            total_minor: order.total.amount_minor(),
            captured_minor: order.captured_minor,
            refunded_minor: order.refunded_minor,
            outstanding_minor: order.outstanding_minor(),
            fully_paid: order.is_fully_paid(),
            status,
            payment_method: order
                .payment
                .as_ref()
                .map(|payment| payment.payment_method.to_string()),
            payments: order
                .payments
                .iter()
                .map(|(payment_id, payment)| PaymentView {
                    payment_id: payment_id.to_string(),
                    method: payment.method.to_string(),
                    provider_reference: payment.provider_reference.as_ref().map(|r| r.to_string()),
                    captured_minor: payment.captured_minor,
                    refunded_minor: payment.refunded_minor,
                })
                .collect(),
            failed_payment_attempts: order.failed_attempts,
            cancellation_reason,
            shipment,
            stream_version,
            position,
        }
    }
}

/// `GET /v1/orders/{id}/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    pub order_id: Uuid,
    pub events: Vec<EventView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: i16,
    pub stream_version: u32,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    /// The event's fields as recorded, in the shape of its `event_version` (the order's
    /// state, the read models and commands read them upcast to the current shape).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Correlation id, causation id, idempotency key, actor and command.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

impl From<RecordedEvent> for EventView {
    fn from(event: RecordedEvent) -> Self {
        Self {
            event_id: event.event_id,
            event_type: event.event_type,
            event_version: event.event_version,
            stream_version: event.stream_version,
            position: event.global_position,
            recorded_at: event.recorded_at,
            data: event.payload,
            metadata: event.metadata,
        }
    }
}

/// A page of a list; pass `next_cursor` as `cursor` for the next one (absent on the last).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}
