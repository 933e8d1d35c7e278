//! What the payments read model makes of each event, shared by the live apply and the
//! rebuild's replay so that both leave the same rows: an order's state after an event,
//! the attempt an event records, and which events change the payments at all.

use domain::Event;

use crate::error::ApplyError;
use crate::event::ProjectedEvent;
use crate::text_enum::text_enum;

text_enum! {
    /// What a payment attempt was.
    pub enum AttemptKind {
        Captured => "captured",
        Failed => "failed",
        Refunded => "refunded",
    }
}

text_enum! {
    /// Where an order's payments stand (computed by the database's `payment_status()`).
    pub enum PaymentStatus {
        AwaitingPayment => "awaiting_payment",
        PartiallyPaid => "partially_paid",
        Paid => "paid",
        PartiallyRefunded => "partially_refunded",
        Refunded => "refunded",
        Cancelled => "cancelled",
    }
}

/// A payment attempt an event records: its columns besides the event's own.
pub(crate) struct NewAttempt<'a> {
    pub(crate) payment_id: &'a str,
    pub(crate) kind: AttemptKind,
    pub(crate) amount: i64,
    pub(crate) method: Option<&'a str>,
    pub(crate) reason: Option<&'a str>,
    pub(crate) refund_id: Option<&'a str>,
}

/// The attempt `event` records, if it is one.
pub(crate) fn attempt(event: &Event) -> Option<NewAttempt<'_>> {
    Some(match event {
        Event::PaymentCaptured(e) => NewAttempt {
            payment_id: e.payment_id.as_str(),
            kind: AttemptKind::Captured,
            amount: e.amount.amount_minor(),
            method: Some(e.method.as_str()),
            reason: None,
            refund_id: None,
        },
        Event::PaymentFailed(e) => NewAttempt {
            payment_id: e.payment_id.as_str(),
            kind: AttemptKind::Failed,
            amount: e.amount.amount_minor(),
            method: None,
            reason: Some(e.reason.as_str()),
            refund_id: None,
        },
        Event::PaymentRefunded(e) => NewAttempt {
            payment_id: e.payment_id.as_str(),
            kind: AttemptKind::Refunded,
            amount: e.amount.amount_minor(),
            method: None,
            reason: Some(e.reason.as_str()),
            refund_id: Some(e.refund_id.as_str()),
        },
        _ => return None,
    })
}

/// An order's payments state, as a version row is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) customer_id: String,
    pub(crate) currency: String,
    pub(crate) amount_due: i64,
    pub(crate) captured: i64,
    pub(crate) refunded: i64,
    pub(crate) cancelled: bool,
    pub(crate) placed_position: i64,
    pub(crate) stream_version: i32,
}

impl State {
    /// The state an order's placement starts.
    pub(crate) fn placed(event: &ProjectedEvent) -> Result<Option<Self>, ApplyError> {
        let Event::OrderPlaced(e) = &event.event else { return Ok(None) };
        Ok(Some(Self {
            customer_id: e.customer_id.as_str().to_owned(),
            currency: e.total.currency().code().to_owned(),
            amount_due: e.total.amount_minor(),
            captured: 0,
            refunded: 0,
            cancelled: false,
            placed_position: event.position,
            stream_version: version(event)?,
        }))
    }

    /// The state after `event` of the same order.
    pub(crate) fn evolve(&mut self, event: &ProjectedEvent) -> Result<(), ApplyError> {
        match &event.event {
            Event::PaymentCaptured(e) => self.captured += e.amount.amount_minor(),
            Event::PaymentRefunded(e) => self.refunded += e.amount.amount_minor(),
            Event::OrderCancelled(_) => self.cancelled = true,
            _ => {}
        }
        self.stream_version = version(event)?;
        Ok(())
    }
}

/// Whether `event` changes an order's payments: its amounts, its status or its attempts.
/// Only these events make a version, and they alone set `stream_version` and `updated_at`:
/// shipping an order, or the marker that it is fully paid (recorded with the capture that
/// settles it), leaves its payments as they were.
pub(crate) fn changes_payments(event: &Event) -> bool {
    match event {
        Event::OrderPlaced(_)
        | Event::PaymentCaptured(_)
        | Event::PaymentFailed(_)
        | Event::PaymentRefunded(_)
        | Event::OrderCancelled(_) => true,
        Event::OrderFullyPaid(_)
        | Event::OrderShipped(_)
        | Event::OrderCancellationRequested(_) => false,
    }
}

pub(crate) fn before_placement(event: &ProjectedEvent) -> ApplyError {
    ApplyError::Inconsistent(format!("order {} has events before its placement", event.stream_id))
}

/// The event's stream version as the tables store it.
pub(crate) fn version(event: &ProjectedEvent) -> Result<i32, ApplyError> {
    Ok(eventstore::to_stored_version(event.stream_version)?)
}
