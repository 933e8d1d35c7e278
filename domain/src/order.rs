//! The `Order` aggregate: its state, [`decide`] and [`evolve`].
//!
//! Invariants every accepted command preserves (checked by the property tests):
//! - `0 ≤ refunded ≤ captured ≤ total` (so `captured − refunded ≤ total`);
//! - per payment, `0 ≤ refunded ≤ captured`;
//! - a cancelled order has no net captured money; a shipped order was fully paid when it
//!   shipped; nothing happens to an order after it is cancelled except refunds.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    Command, Currency, CustomerEmail, CustomerId, DomainError, Event, Money,
    OrderCancellationRequested, OrderCancelled, OrderFullyPaid, OrderId, OrderLine, OrderPlaced,
    OrderShipped, PaymentCaptured, PaymentFailed, PaymentId, PaymentInstruction, PaymentMethod,
    PaymentRefunded, ProviderReference, Reason, RefundId, Rule, SalesChannel,
};

/// The shape of [`Order`] as snapshots store it. Bump it whenever the state's fields or
/// their meaning change: snapshots of another shape are then ignored (and replaced as
/// orders are written), never misread. `tests/snapshot_shape.rs` fails until you do.
pub const ORDER_SHAPE_VERSION: i32 = 2;

/// An order as its events made it. `Unplaced` is the state of an empty stream.
// One state lives per command for a few microseconds; boxing the placed order would only
// add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    #[default]
    Unplaced,
    Placed(PlacedOrder),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOrder {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub customer_email: CustomerEmail,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub sales_channel: SalesChannel,
    /// How the payment service charges it, if it does.
    pub payment: Option<PaymentInstruction>,
    /// Sum of all captures, in minor units of the order's currency.
    pub captured_minor: i64,
    /// Sum of all refunds.
    pub refunded_minor: i64,
    pub payments: BTreeMap<PaymentId, CapturedPayment>,
    pub refund_ids: BTreeSet<RefundId>,
    pub failed_attempts: u32,
    pub fulfilment: Fulfilment,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedPayment {
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub method: PaymentMethod,
    /// The provider's id of the charge, when the capture recorded one.
    pub provider_reference: Option<ProviderReference>,
}

impl CapturedPayment {
    pub fn refundable_minor(&self) -> i64 {
        self.captured_minor - self.refunded_minor
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fulfilment {
    Open,
    /// A cancellation with refund was asked for: the payment service is giving the money
    /// back, then cancels.
    Cancelling {
        reason: Reason,
    },
    Cancelled {
        reason: Reason,
    },
    Shipped {
        carrier: crate::Carrier,
        tracking_number: crate::TrackingNumber,
    },
}

impl PlacedOrder {
    pub fn currency(&self) -> Currency {
        self.total.currency()
    }

    /// Money kept: captures less refunds.
    pub fn net_captured_minor(&self) -> i64 {
        self.captured_minor - self.refunded_minor
    }

    /// What the customer still owes. Refunds do not add to it: a refund is money given
    /// back (a return, a goodwill gesture), not a debt the customer must pay again.
    pub fn outstanding_minor(&self) -> i64 {
        self.total.amount_minor() - self.captured_minor
    }

    /// The whole total was captured at some point (refunds since then do not undo it).
    pub fn is_fully_paid(&self) -> bool {
        self.outstanding_minor() == 0
    }

    fn money(&self, amount_minor: i64) -> Money {
        Money::new(amount_minor, self.currency())
    }

    /// Not cancelled and not shipped. A cancellation under way still lets payments be
    /// recorded: a charge the provider made before it must be on the books to be refunded.
    fn ensure_open(&self) -> Result<(), Rule> {
        match self.fulfilment {
            Fulfilment::Open | Fulfilment::Cancelling { .. } => Ok(()),
            Fulfilment::Cancelled { .. } => Err(Rule::OrderCancelled),
            Fulfilment::Shipped { .. } => Err(Rule::OrderShipped),
        }
    }

    fn ensure_not_cancelling(&self) -> Result<(), Rule> {
        match self.fulfilment {
            Fulfilment::Cancelling { .. } => Err(Rule::CancellationRequested),
            _ => Ok(()),
        }
    }

    /// Whether a cancellation with refund is under way.
    pub fn is_cancelling(&self) -> bool {
        matches!(self.fulfilment, Fulfilment::Cancelling { .. })
    }
}

/// Decides which events a command produces against the current state, or why it cannot.
pub fn decide(order: &Order, command: Command) -> Result<Vec<Event>, DomainError> {
    let placed = match (order, command) {
        (Order::Unplaced, Command::PlaceOrder(place)) => {
            let placed = OrderPlaced {
                order_id: place.order_id,
                customer_id: place.customer_id,
                customer_email: place.customer_email,
                lines: place
                    .items
                    .into_iter()
                    .map(|item| OrderLine {
                        sku: item.sku,
                        quantity: item.quantity.get(),
                        unit_price: item.unit_price,
                    })
                    .collect(),
                total: place.total,
                sales_channel: place.sales_channel,
                payment: place.payment,
            };
            let total = placed.total;
            let mut events = vec![Event::OrderPlaced(placed)];
            // Nothing to pay (all items free): the balance is settled on placement, so the
            // order can ship without a capture.
            if total.amount_minor() == 0 {
                events.push(Event::OrderFullyPaid(OrderFullyPaid { total }));
            }
            return Ok(events);
        }
        (Order::Placed(_), Command::PlaceOrder(_)) => return Err(Rule::OrderAlreadyPlaced.into()),
        (Order::Unplaced, _) => return Err(DomainError::OrderNotFound),
        (Order::Placed(placed), command) => (placed, command),
    };
    let (order, command) = placed;
    match command {
        Command::PlaceOrder(_) => Err(Rule::OrderAlreadyPlaced.into()),
        Command::CapturePayment(capture) => {
            order.ensure_open()?;
            if order.payments.contains_key(&capture.payment_id) {
                return Err(Rule::PaymentAlreadyCaptured.into());
            }
            let outstanding = order.outstanding_minor();
            let amount = capture.amount.minor_units();
            if amount > outstanding {
                return Err(
                    Rule::CaptureExceedsOutstanding { outstanding, requested: amount }.into()
                );
            }
            let mut events = vec![Event::PaymentCaptured(PaymentCaptured {
                payment_id: capture.payment_id,
                amount: order.money(amount),
                method: capture.method,
                provider_reference: capture.provider_reference,
            })];
            if amount == outstanding {
                events.push(Event::OrderFullyPaid(OrderFullyPaid { total: order.total }));
            }
            Ok(events)
        }
        Command::RecordPaymentFailure(failure) => {
            order.ensure_open()?;
            // A declined attempt under an id that already captured money would contradict
            // the payment service provider's own record.
            if order.payments.contains_key(&failure.payment_id) {
                return Err(Rule::PaymentAlreadyCaptured.into());
            }
            Ok(vec![Event::PaymentFailed(PaymentFailed {
                payment_id: failure.payment_id,
                amount: order.money(failure.amount.minor_units()),
                reason: failure.reason,
                provider_reference: failure.provider_reference,
            })])
        }
        Command::RefundPayment(refund) => {
            // Refunds stay possible after shipping (returns) and after cancelling.
            if order.refund_ids.contains(&refund.refund_id) {
                return Err(Rule::RefundAlreadyRecorded.into());
            }
            let payment = order.payments.get(&refund.payment_id).ok_or(Rule::UnknownPayment)?;
            let refundable = payment.refundable_minor();
            let amount = refund.amount.minor_units();
            if amount > refundable {
                return Err(Rule::RefundExceedsRefundable { refundable, requested: amount }.into());
            }
            Ok(vec![Event::PaymentRefunded(PaymentRefunded {
                refund_id: refund.refund_id,
                payment_id: refund.payment_id,
                amount: order.money(amount),
                reason: refund.reason,
                provider_reference: refund.provider_reference,
            })])
        }
        Command::CancelOrder(cancel) => {
            order.ensure_open()?;
            let net_captured = order.net_captured_minor();
            if net_captured == 0 {
                return Ok(vec![Event::OrderCancelled(OrderCancelled { reason: cancel.reason })]);
            }
            if !cancel.refund {
                return Err(Rule::CapturedFundsNotRefunded { net_captured }.into());
            }
            order.ensure_not_cancelling()?;
            let unknown_to_provider = order.payments.iter().find(|(_, payment)| {
                payment.refundable_minor() > 0 && payment.provider_reference.is_none()
            });
            if let Some((payment_id, _)) = unknown_to_provider {
                return Err(Rule::RefundNotPossible { payment_id: payment_id.to_string() }.into());
            }
            Ok(vec![Event::OrderCancellationRequested(OrderCancellationRequested {
                reason: cancel.reason,
            })])
        }
        Command::ShipOrder(ship) => {
            order.ensure_open()?;
            order.ensure_not_cancelling()?;
            if !order.is_fully_paid() {
                return Err(Rule::NotFullyPaid { outstanding: order.outstanding_minor() }.into());
            }
            Ok(vec![Event::OrderShipped(OrderShipped {
                carrier: ship.carrier,
                tracking_number: ship.tracking_number,
            })])
        }
    }
}

/// Folds one event into the state. Events are facts: `evolve` never refuses one. An event
/// that makes no sense for the state (which `decide` never produces) leaves it unchanged.
pub fn evolve(order: Order, event: &Event) -> Order {
    match (order, event) {
        (Order::Unplaced, Event::OrderPlaced(placed)) => Order::Placed(PlacedOrder {
            order_id: placed.order_id,
            customer_id: placed.customer_id.clone(),
            customer_email: placed.customer_email.clone(),
            lines: placed.lines.clone(),
            total: placed.total,
            sales_channel: placed.sales_channel.clone(),
            payment: placed.payment.clone(),
            captured_minor: 0,
            refunded_minor: 0,
            payments: BTreeMap::new(),
            refund_ids: BTreeSet::new(),
            failed_attempts: 0,
            fulfilment: Fulfilment::Open,
        }),
        (Order::Placed(mut order), event) => {
            apply(&mut order, event);
            Order::Placed(order)
        }
        (order @ Order::Unplaced, _) => order,
    }
}

fn apply(order: &mut PlacedOrder, event: &Event) {
    match event {
        Event::OrderPlaced(_) | Event::OrderFullyPaid(_) => {}
        Event::PaymentCaptured(captured) => {
            order.captured_minor += captured.amount.amount_minor();
            order.payments.insert(
                captured.payment_id.clone(),
                CapturedPayment {
                    captured_minor: captured.amount.amount_minor(),
                    refunded_minor: 0,
                    method: captured.method.clone(),
                    provider_reference: captured.provider_reference.clone(),
                },
            );
        }
        Event::PaymentFailed(_) => order.failed_attempts += 1,
        Event::PaymentRefunded(refunded) => {
            order.refunded_minor += refunded.amount.amount_minor();
            order.refund_ids.insert(refunded.refund_id.clone());
            if let Some(payment) = order.payments.get_mut(&refunded.payment_id) {
                payment.refunded_minor += refunded.amount.amount_minor();
            }
        }
        Event::OrderCancellationRequested(requested) => {
            order.fulfilment = Fulfilment::Cancelling { reason: requested.reason.clone() };
        }
        Event::OrderCancelled(cancelled) => {
            order.fulfilment = Fulfilment::Cancelled { reason: cancelled.reason.clone() };
        }
        Event::OrderShipped(shipped) => {
            order.fulfilment = Fulfilment::Shipped {
                carrier: shipped.carrier.clone(),
                tracking_number: shipped.tracking_number.clone(),
            };
        }
    }
}
