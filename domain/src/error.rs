//! Why a command was refused.
//!
//! Two kinds of refusal are kept apart because clients handle them differently:
//! a [`ValidationError`] means the request itself is wrong (fix it and resend), a
//! [`DomainError`] means the request is well formed but the order's current state does not
//! allow it (a business rule; resending the same thing will not help).

use std::fmt;

/// A value that could not be parsed into a domain type. `field` names the offending input
/// in the client's terms (e.g. `items[2].quantity`), so it can be shown next to it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }

    /// Prefixes the field path, so nested parsers can report `items[3].sku` while only
    /// knowing about `sku` themselves.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// A command refused by the aggregate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The command addresses an order that was never placed.
    #[error("order not found")]
    OrderNotFound,
    /// The order exists but a business rule forbids the command in its current state.
    #[error("{0}")]
    RuleViolated(Rule),
}

impl From<Rule> for DomainError {
    fn from(rule: Rule) -> Self {
        Self::RuleViolated(rule)
    }
}

/// The business rules a command can break. Each has a stable machine-readable
/// [`code`](Rule::code) that clients may match on; the message is for humans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    OrderAlreadyPlaced,
    OrderCancelled,
    OrderShipped,
    CaptureExceedsOutstanding {
        outstanding: i64,
        requested: i64,
    },
    PaymentAlreadyCaptured,
    UnknownPayment,
    RefundAlreadyRecorded,
    RefundExceedsRefundable {
        refundable: i64,
        requested: i64,
    },
    CapturedFundsNotRefunded {
        net_captured: i64,
    },
    NotFullyPaid {
        outstanding: i64,
    },
    /// A cancellation with refund is under way: the order cannot ship, nor be asked to
    /// cancel again.
    CancellationRequested,
    /// A cancellation with refund needs every payment holding money to be known to the
    /// payment provider; this one was recorded without a provider reference.
    RefundNotPossible {
        payment_id: String,
    },
}

impl Rule {
    pub fn code(&self) -> &'static str {
        match self {
            Self::OrderAlreadyPlaced => "order_already_placed",
            Self::OrderCancelled => "order_cancelled",
            Self::OrderShipped => "order_shipped",
            Self::CaptureExceedsOutstanding { .. } => "capture_exceeds_outstanding",
            Self::PaymentAlreadyCaptured => "payment_already_captured",
            Self::UnknownPayment => "unknown_payment",
            Self::RefundAlreadyRecorded => "refund_already_recorded",
            Self::RefundExceedsRefundable { .. } => "refund_exceeds_refundable",
            Self::CapturedFundsNotRefunded { .. } => "captured_funds_not_refunded",
            Self::NotFullyPaid { .. } => "not_fully_paid",
            Self::CancellationRequested => "cancellation_requested",
            Self::RefundNotPossible { .. } => "refund_not_possible",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OrderAlreadyPlaced => write!(f, "an order with this id was already placed"),
            Self::OrderCancelled => write!(f, "the order is cancelled"),
            Self::OrderShipped => write!(f, "the order has already shipped"),
            Self::CaptureExceedsOutstanding { outstanding, requested } => {
                write!(f, "capture of {requested} exceeds the outstanding balance of {outstanding}")
            }
            Self::PaymentAlreadyCaptured => {
                write!(f, "a payment with this payment_id was already captured")
            }
            Self::UnknownPayment => write!(f, "no captured payment has this payment_id"),
            Self::RefundAlreadyRecorded => write!(f, "a refund with this refund_id already exists"),
            Self::RefundExceedsRefundable { refundable, requested } => write!(
                f,
                "refund of {requested} exceeds the {refundable} still refundable on this payment"
            ),
            Self::CapturedFundsNotRefunded { net_captured } => write!(
                f,
                "{net_captured} captured on this order must be refunded before it can be cancelled"
            ),
            Self::NotFullyPaid { outstanding } => {
                write!(f, "the order is not fully paid ({outstanding} outstanding)")
            }
            Self::CancellationRequested => {
                write!(f, "the order's cancellation with refund is under way")
            }
            Self::RefundNotPossible { payment_id } => write!(
                f,
                "payment {payment_id} was not taken through the payment provider, so it cannot \
                 be refunded there; refund it and record the refund, then cancel"
            ),
        }
    }
}
