//! Events: facts the ledger recorded, in the past tense. Once appended they never change;
//! a new shape of an event is a new `event_version`, upcast when read (in `eventstore`).
//!
//! Every event carries what its consumers need without looking elsewhere (the currency on
//! each amount, the customer on the order), because projections see one event at a time.

use serde::{Deserialize, Serialize};

use crate::{
    Carrier, CustomerEmail, CustomerId, Money, OrderId, PaymentId, PaymentMethod, PaymentMethodId,
    ProviderReference, Reason, RefundId, SalesChannel, Sku, TrackingNumber,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    OrderPlaced(OrderPlaced),
    PaymentCaptured(PaymentCaptured),
    PaymentFailed(PaymentFailed),
    PaymentRefunded(PaymentRefunded),
    OrderFullyPaid(OrderFullyPaid),
    OrderCancellationRequested(OrderCancellationRequested),
    OrderCancelled(OrderCancelled),
    OrderShipped(OrderShipped),
}

impl Event {
    /// The stable name stored in `events.event_type` and sent as the `event-type` header.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::OrderPlaced(_) => "OrderPlaced",
            Self::PaymentCaptured(_) => "PaymentCaptured",
            Self::PaymentFailed(_) => "PaymentFailed",
            Self::PaymentRefunded(_) => "PaymentRefunded",
            Self::OrderFullyPaid(_) => "OrderFullyPaid",
            Self::OrderCancellationRequested(_) => "OrderCancellationRequested",
            Self::OrderCancelled(_) => "OrderCancelled",
            Self::OrderShipped(_) => "OrderShipped",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderLine {
    pub sku: Sku,
    pub quantity: u32,
    pub unit_price: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub customer_email: CustomerEmail,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    /// Where the order came from. New in version 2 of the stored event; version 1 events
    /// are read as [`SalesChannel::unknown`].
    pub sales_channel: SalesChannel,
    /// How the payment service is to charge the order. New in version 3; earlier versions
    /// read as `None` (the client records payments itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentInstruction>,
}

/// What the payment service needs to charge an order: the provider's token for the
/// customer's payment method. Never card details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentInstruction {
    pub payment_method: PaymentMethodId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentCaptured {
    pub payment_id: PaymentId,
    pub amount: Money,
    pub method: PaymentMethod,
    /// The payment provider's id for it (`pi_…`, `re_…`), when one is known. New in
    /// version 2; version 1 reads as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<ProviderReference>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentFailed {
    pub payment_id: PaymentId,
    pub amount: Money,
    pub reason: Reason,
    /// The payment provider's id for it (`pi_…`, `re_…`), when one is known. New in
    /// version 2; version 1 reads as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<ProviderReference>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentRefunded {
    pub refund_id: RefundId,
    pub payment_id: PaymentId,
    pub amount: Money,
    pub reason: Reason,
    /// The payment provider's id for it (`pi_…`, `re_…`), when one is known. New in
    /// version 2; version 1 reads as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<ProviderReference>,
}

/// The balance reached zero: captures now equal the order total. Refunds do not reopen the
/// balance, so an order records this at most once: with the capture that settles it, or on
/// placement when its total is zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderFullyPaid {
    pub total: Money,
}

/// A client asked to cancel an order that holds captured money, and to give that money
/// back: the payment service refunds each captured payment through the provider, then
/// cancels. Until then the order cannot ship.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderCancellationRequested {
    pub reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderCancelled {
    pub reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderShipped {
    pub carrier: Carrier,
    pub tracking_number: TrackingNumber,
}
