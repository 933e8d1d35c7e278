//! Builders for the events the command builders record, written out field by field (not
//! obtained from `decide`), so a specification states the expected facts independently of
//! the code under test.

use domain::{
    Event, Money, OrderCancellationRequested, OrderCancelled, OrderFullyPaid, OrderLine,
    OrderPlaced, OrderShipped, PaymentCaptured, PaymentFailed, PaymentInstruction, PaymentMethodId,
    PaymentRefunded,
};

use super::commands::{
    carrier, customer_email, customer_id, eur, method, order_id, payment_id, provider_reference,
    reason, refund_id, sales_channel, tracking_number, CANCEL_REASON, FAILURE_REASON,
    PAYMENT_METHOD_ID, REFUND_REASON, STANDARD_ITEMS,
};

pub fn euros(amount_minor: i64) -> Money {
    Money::new(amount_minor, eur())
}

/// The standard order was placed.
pub fn placed() -> Event {
    placed_with(STANDARD_ITEMS)
}

/// An order of `(sku, quantity, unit price in cents)` lines was placed; the total is
/// computed here, independently of `PlaceOrder::new`.
pub fn placed_with(items: &[(&str, i64, i64)]) -> Event {
    let lines: Vec<OrderLine> = items
        .iter()
        .map(|&(sku, quantity, price)| OrderLine {
            sku: domain::Sku::parse(sku).expect("a valid sku"),
            quantity: u32::try_from(quantity).expect("a quantity that fits in u32"),
            unit_price: euros(price),
        })
        .collect();
    let total = items.iter().map(|&(_, quantity, price)| quantity * price).sum();
    Event::OrderPlaced(OrderPlaced {
        order_id: order_id(),
        customer_id: customer_id(),
        customer_email: customer_email(),
        lines,
        total: euros(total),
        sales_channel: sales_channel(),
        payment: None,
    })
}

pub fn captured(payment: &str, amount_minor: i64) -> Event {
    Event::PaymentCaptured(PaymentCaptured {
        payment_id: payment_id(payment),
        amount: euros(amount_minor),
        method: method(),
        provider_reference: None,
    })
}

pub fn failed(payment: &str, amount_minor: i64) -> Event {
    Event::PaymentFailed(PaymentFailed {
        payment_id: payment_id(payment),
        amount: euros(amount_minor),
        reason: reason(FAILURE_REASON),
        provider_reference: None,
    })
}

pub fn refunded(refund: &str, payment: &str, amount_minor: i64) -> Event {
    Event::PaymentRefunded(PaymentRefunded {
        refund_id: refund_id(refund),
        payment_id: payment_id(payment),
        amount: euros(amount_minor),
        reason: reason(REFUND_REASON),
        provider_reference: None,
    })
}

pub fn fully_paid(total_minor: i64) -> Event {
    Event::OrderFullyPaid(OrderFullyPaid { total: euros(total_minor) })
}

pub fn cancelled() -> Event {
    Event::OrderCancelled(OrderCancelled { reason: reason(CANCEL_REASON) })
}

/// The standard order was placed, to be charged by the payment service.
pub fn placed_to_charge() -> Event {
    match placed() {
        Event::OrderPlaced(placed) => Event::OrderPlaced(OrderPlaced {
            payment: Some(PaymentInstruction {
                payment_method: PaymentMethodId::parse(PAYMENT_METHOD_ID)
                    .expect("a valid payment method id"),
            }),
            ..placed
        }),
        other => other,
    }
}

pub fn captured_via_provider(payment: &str, amount_minor: i64) -> Event {
    Event::PaymentCaptured(PaymentCaptured {
        payment_id: payment_id(payment),
        amount: euros(amount_minor),
        method: method(),
        provider_reference: Some(provider_reference()),
    })
}

pub fn cancellation_requested() -> Event {
    Event::OrderCancellationRequested(OrderCancellationRequested { reason: reason(CANCEL_REASON) })
}

pub fn shipped() -> Event {
    Event::OrderShipped(OrderShipped { carrier: carrier(), tracking_number: tracking_number() })
}
