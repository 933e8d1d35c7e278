//! The state of one order's payment process, and how it changes. Pure: no I/O, no clock
//! (times come in as arguments), so every transition is unit-tested.
//!
//! The process is a saga in the process-manager style: events from the bus start and
//! redirect it ([`PaymentProcess::started`], [`PaymentProcess::cancellation_requested`],
//! [`PaymentProcess::cancelled_elsewhere`]); the worker does one step at a time and
//! records what came of it. Everything that must be the same when a step is repeated
//! after a crash — the provider idempotency key, the amount, the payment id — is chosen
//! once, stored here *before* the provider is called, and reused until the outcome is
//! known. That is what makes a repeat safe: the provider answers the same key with the
//! same charge, and the command layer answers the same command key with the same events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::policy::RetryPolicy;

/// The reason an order is cancelled with when its payment failed for good.
pub const PAYMENT_FAILED: &str = "payment_failed";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentProcess {
    pub order_id: Uuid,
    /// The order's correlation id: every command the process issues carries it.
    pub correlation_id: String,
    /// The provider's payment method to charge; `None` when the process only refunds.
    pub payment_method: Option<String>,
    pub step: Step,
    /// Charge attempts started so far (a repeat of an attempt whose outcome was unknown is
    /// the same attempt).
    pub attempts: u32,
    /// The charge whose outcome is not recorded yet.
    pub charge: Option<ChargeAttempt>,
    /// What came of each finished attempt, oldest first.
    pub outcomes: Vec<AttemptOutcome>,
    /// Refunds started (and how far each got), for a cancellation.
    pub refunds: Vec<RefundAttempt>,
    /// The event the next command names as its cause: the one that triggered the step.
    pub cause: Uuid,
    /// The W3C trace context (`traceparent`) the event that started or last redirected the
    /// process was received in: the worker's steps continue that trace, and so do the
    /// commands they send. States stored before it was kept have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// When the worker should act next; `None`: nothing to do.
    pub due_at: Option<DateTime<Utc>>,
    /// The last thing that went wrong without ending the process (an unknown outcome, a
    /// provider outage), for the operator.
    pub last_error: Option<String>,
    /// The highest store position this state reflects (for `at_position` answers).
    pub through_position: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Step {
    /// Charging the outstanding amount, attempt after attempt.
    Charging,
    /// The order is fully paid.
    Paid,
    /// Giving back what was captured (resolving any charge in flight first), then
    /// cancelling the order with `reason`.
    Cancelling { reason: String },
    /// The order is cancelled and holds no money.
    Cancelled,
    /// Someone else ended the order (cancelled or shipped it): nothing left to do.
    Closed,
    /// The process cannot go on without a person (a refund the provider refused, money
    /// taken outside the provider): see `last_error`.
    Stuck { reason: String },
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Charging => "charging",
            Self::Paid => "paid",
            Self::Cancelling { .. } => "cancelling",
            Self::Cancelled => "cancelled",
            Self::Closed => "closed",
            Self::Stuck { .. } => "stuck",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(self, Self::Paid | Self::Cancelled | Self::Closed | Self::Stuck { .. })
    }
}

/// One charge attempt, fixed before the provider is called.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeAttempt {
    pub number: u32,
    /// The payment id the capture or failure is recorded under.
    pub payment_id: String,
    /// The provider idempotency key: the same for every repeat of this attempt.
    pub idempotency_key: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The provider's payment intent, once it named one.
    pub intent_id: Option<String>,
    /// A successful charge waiting to be recorded as `PaymentCaptured` (the provider's
    /// answer is kept so a crash before the command does not need the provider again).
    pub succeeded: bool,
    pub started_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptOutcome {
    pub number: u32,
    pub payment_id: String,
    pub amount_minor: i64,
    /// `succeeded`, `soft_decline` or `hard_decline`.
    pub outcome: String,
    pub detail: Option<String>,
    pub intent_id: Option<String>,
    /// The event that recorded it.
    pub event_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

/// A refund of one captured payment, fixed before the provider is called.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAttempt {
    pub payment_id: String,
    pub intent_id: String,
    pub amount_minor: i64,
    pub idempotency_key: String,
    /// The provider's refund, once made.
    pub refund_id: Option<String>,
    /// Recorded as `PaymentRefunded`.
    pub recorded: bool,
}

/// How a charge attempt ended, as the worker learned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    Succeeded,
    Declined { soft: bool, detail: String },
}

impl PaymentProcess {
    /// An order was placed with a payment instruction: charge it now.
    pub fn started(
        order_id: Uuid,
        correlation_id: String,
        payment_method: String,
        cause: Uuid,
        position: i64,
        now: DateTime<Utc>,
    ) -> Self {
        Self::new(order_id, correlation_id, Some(payment_method), cause, position, Some(now))
    }

    fn new(
        order_id: Uuid,
        correlation_id: String,
        payment_method: Option<String>,
        cause: Uuid,
        through_position: i64,
        due_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            order_id,
            correlation_id,
            payment_method,
            step: Step::Charging,
            attempts: 0,
            charge: None,
            outcomes: Vec::new(),
            refunds: Vec::new(),
            cause,
            trace: None,
            due_at,
            last_error: None,
            through_position,
        }
    }

    /// A cancellation with refund was asked for: refund, then cancel. Starts a process for
    /// an order that had none (its money was captured by the client through the provider).
    pub fn cancellation_requested(
        existing: Option<Self>,
        order_id: Uuid,
        correlation_id: String,
        reason: String,
        cause: Uuid,
        position: i64,
        now: DateTime<Utc>,
    ) -> Self {
        let mut process = existing
            .unwrap_or_else(|| Self::new(order_id, correlation_id, None, cause, position, None));
        if matches!(process.step, Step::Charging | Step::Paid) {
            process.step = Step::Cancelling { reason };
            process.cause = cause;
            process.due_at = Some(now);
        }
        process.through_position = process.through_position.max(position);
        process
    }

    /// The order was cancelled or shipped by someone else. A charge in flight must still
    /// be resolved (money it took is given back), so only an idle process closes.
    pub fn cancelled_elsewhere(mut self, position: i64) -> Self {
        if self.step == Step::Charging && self.charge.is_none() {
            self.step = Step::Closed;
            self.due_at = None;
        }
        self.through_position = self.through_position.max(position);
        self
    }

    /// Fixes the next charge attempt of `amount_minor` before calling the provider.
    pub fn begin_charge(&mut self, amount_minor: i64, currency: &str, now: DateTime<Utc>) {
        self.attempts += 1;
        let number = self.attempts;
        self.charge = Some(ChargeAttempt {
            number,
            payment_id: format!("charge_{number}"),
            idempotency_key: format!("ledger-{}-charge-{number}", self.order_id),
            amount_minor,
            currency: currency.to_owned(),
            intent_id: None,
            succeeded: false,
            started_at: now,
        });
    }

    /// The charge's outcome is not known yet: ask again (same key) after a pause that
    /// grows with how long it has been unknown.
    pub fn outcome_unknown(
        &mut self,
        intent_id: Option<String>,
        error: String,
        policy: &RetryPolicy,
        now: DateTime<Utc>,
    ) {
        if let Some(charge) = &mut self.charge {
            if intent_id.is_some() {
                charge.intent_id = intent_id;
            }
            let unknown_for = (now - charge.started_at).to_std().unwrap_or_default();
            self.due_at = Some(now + policy.unknown_retry_after(unknown_for));
        }
        self.last_error = Some(error);
    }

    /// The provider took the money; the capture is recorded next.
    pub fn charge_succeeded(&mut self, intent_id: String, now: DateTime<Utc>) {
        if let Some(charge) = &mut self.charge {
            charge.intent_id = Some(intent_id);
            charge.succeeded = true;
        }
        self.last_error = None;
        self.due_at = Some(now);
    }

    /// The attempt's outcome is recorded in the store by the event `event_id`: decide what
    /// comes next. A soft decline is tried again later as a new attempt, until the policy's
    /// limit; a hard decline, or the last soft one, cancels the order.
    pub fn attempt_recorded(
        &mut self,
        ended: Ended,
        event_id: Option<Uuid>,
        position: i64,
        policy: &RetryPolicy,
        now: DateTime<Utc>,
    ) {
        let Some(charge) = self.charge.take() else { return };
        let (outcome, detail, soft) = match ended {
            Ended::Succeeded => ("succeeded", None, false),
            Ended::Declined { soft: true, detail } => ("soft_decline", Some(detail), true),
            Ended::Declined { soft: false, detail } => ("hard_decline", Some(detail), false),
        };
        self.outcomes.push(AttemptOutcome {
            number: charge.number,
            payment_id: charge.payment_id,
            amount_minor: charge.amount_minor,
            outcome: outcome.to_owned(),
            detail,
            intent_id: charge.intent_id,
            event_id,
            at: now,
        });
        if let Some(event_id) = event_id {
            self.cause = event_id;
        }
        self.through_position = self.through_position.max(position);
        self.last_error = None;
        match (&self.step, outcome) {
            // A cancellation under way goes on: the worker refunds what was just taken.
            (Step::Cancelling { .. }, _) => self.due_at = Some(now),
            (_, "succeeded") => self.due_at = Some(now),
            _ if soft && self.attempts < policy.max_attempts => {
                self.due_at = Some(now + policy.soft_decline_retry_after(self.attempts));
            }
            _ => {
                self.step = Step::Cancelling { reason: PAYMENT_FAILED.to_owned() };
                self.due_at = Some(now);
            }
        }
    }

    /// The refund of `payment_id` (refundable `amount_minor` through `intent_id`), fixed
    /// before calling the provider; an unfinished one for the same payment is reused.
    pub fn refund_for(
        &mut self,
        payment_id: &str,
        intent_id: &str,
        amount_minor: i64,
    ) -> RefundAttempt {
        if let Some(open) = self.refunds.iter().find(|r| r.payment_id == payment_id && !r.recorded)
        {
            return open.clone();
        }
        let number = self.refunds.iter().filter(|r| r.payment_id == payment_id).count() + 1;
        let attempt = RefundAttempt {
            payment_id: payment_id.to_owned(),
            intent_id: intent_id.to_owned(),
            amount_minor,
            idempotency_key: format!("ledger-{}-refund-{payment_id}-{number}", self.order_id),
            refund_id: None,
            recorded: false,
        };
        self.refunds.push(attempt.clone());
        attempt
    }

    /// The provider made the refund (not yet recorded in the store).
    pub fn refund_made(&mut self, key: &str, refund_id: String) {
        if let Some(refund) = self.refunds.iter_mut().find(|r| r.idempotency_key == key) {
            refund.refund_id = Some(refund_id);
        }
    }

    /// The refund is recorded by the event `event_id`.
    pub fn refund_recorded(&mut self, key: &str, event_id: Option<Uuid>, position: i64) {
        if let Some(refund) = self.refunds.iter_mut().find(|r| r.idempotency_key == key) {
            refund.recorded = true;
        }
        if let Some(event_id) = event_id {
            self.cause = event_id;
        }
        self.through_position = self.through_position.max(position);
    }

    /// Ends the process at `step` (nothing more to do).
    pub fn finish(&mut self, step: Step, position: i64) {
        self.step = step;
        self.due_at = None;
        self.last_error = None;
        self.through_position = self.through_position.max(position);
    }

    /// Cannot go on without a person.
    pub fn stuck(&mut self, reason: String) {
        self.last_error = Some(reason.clone());
        self.step = Step::Stuck { reason };
        self.due_at = None;
    }

    /// Something failed that a later round may not meet (the store, the provider): try
    /// again after `after`.
    pub fn retry_later(&mut self, error: String, after: std::time::Duration, now: DateTime<Utc>) {
        self.last_error = Some(error);
        self.due_at = Some(now + after);
    }
}

#[cfg(test)]
mod tests;
