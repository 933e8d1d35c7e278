//! What a notification says: the template, subject and body for each event worth telling
//! the customer, with amounts in the currency's minor units; and its id, derived from the
//! event, so a replay never makes a second one.

use domain::{Event, Money};
use uuid::Uuid;

use crate::error::ApplyError;
use crate::event::ProjectedEvent;

/// Namespace of notification ids (UUIDv5 of the event id).
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c65_6467_6572_4e6f_7469_6669_6361_7469);

/// A rendered message.
pub(crate) struct Rendered {
    pub(crate) template: &'static str,
    pub(crate) subject: String,
    pub(crate) body: String,
}

/// "1 item", "3 items": what the customer bought, counted in pieces, not order lines.
fn items(count: u64) -> String {
    match count {
        1 => "1 item".to_owned(),
        n => format!("{n} items"),
    }
}

/// The message about `event`, or `None` when it is not worth one.
pub(crate) fn render(event: &Event, order_id: Uuid) -> Option<Rendered> {
    let short = &order_id.to_string()[..8];
    let money = |m: &Money| m.display();
    let (template, subject, body) = match event {
        Event::OrderPlaced(placed) => (
            "order_confirmation",
            format!("Order {short} confirmed"),
            format!(
                "Thank you for your order of {}, totalling {}.",
                items(placed.lines.iter().map(|line| u64::from(line.quantity)).sum()),
                money(&placed.total)
            ),
        ),
        Event::PaymentCaptured(captured) => (
            "payment_receipt",
            format!("Payment received for order {short}"),
            format!(
                "We received {} by {} (payment {}).",
                money(&captured.amount),
                captured.method,
                captured.payment_id
            ),
        ),
        Event::PaymentFailed(failed) => (
            "payment_failed",
            format!("Payment failed for order {short}"),
            format!(
                "Your payment of {} did not go through: {}.",
                money(&failed.amount),
                failed.reason
            ),
        ),
        Event::PaymentRefunded(refunded) => (
            "refund_issued",
            format!("Refund issued for order {short}"),
            format!("We refunded {} ({}).", money(&refunded.amount), refunded.reason),
        ),
        Event::OrderCancellationRequested(requested) => (
            "cancellation_requested",
            format!("Cancelling order {short}"),
            format!(
                "We are cancelling your order ({}) and refunding what you paid; you will hear \
                 from us when it is done.",
                requested.reason
            ),
        ),
        Event::OrderCancelled(cancelled) => (
            "order_cancelled",
            format!("Order {short} cancelled"),
            format!("Your order was cancelled: {}.", cancelled.reason),
        ),
        Event::OrderShipped(shipped) => (
            "order_shipped",
            format!("Order {short} shipped"),
            format!(
                "Your order is on its way with {} (tracking {}).",
                shipped.carrier, shipped.tracking_number
            ),
        ),
        Event::OrderFullyPaid(_) => return None,
    };
    Some(Rendered { template, subject, body })
}

/// The id of the notification about `event`.
pub(crate) fn id_of(event: &ProjectedEvent) -> Uuid {
    Uuid::new_v5(&ID_NAMESPACE, event.event_id.as_bytes())
}

pub(crate) fn no_recipient(event: &ProjectedEvent) -> ApplyError {
    ApplyError::Inconsistent(format!("no recipient for order {}", event.stream_id))
}

#[cfg(test)]
mod tests {
    use super::items;

    #[test]
    fn items_are_counted_in_pieces_and_said_as_a_customer_would() {
        assert_eq!(items(1), "1 item");
        assert_eq!(items(2), "2 items");
        assert_eq!(items(3), "3 items");
    }
}
