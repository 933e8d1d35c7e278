//! The payment provider as the payment service sees it: charge a payment method, look a
//! charge up again, refund it. The adapter for Stripe's API lives in `payment-provider`
//! (the only crate here that speaks HTTP to a provider); any provider or stand-in speaking
//! the same subset can replace it.
//!
//! The answers are sorted the way the process manager must act on them:
//! - [`ChargeOutcome::Succeeded`] / [`ChargeOutcome::Declined`]: a known result;
//! - [`ChargeOutcome::Pending`] and every [`ProviderError::Unknown`]: the charge may or may
//!   not have happened. The only safe next step is to ask again with the **same**
//!   idempotency key (or retrieve the payment intent): a new key could charge twice.

use std::future::Future;
use std::time::Duration;

/// One charge, as the process manager asks for it. Everything in it is fixed for the
/// lifetime of `idempotency_key`: the provider refuses a key reused with other parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRequest {
    /// Sent as `metadata[order_id]`, so the provider's dashboard leads back to the order.
    pub order_id: String,
    /// Minor units of `currency`.
    pub amount_minor: i64,
    /// ISO 4217, upper case as the ledger stores it (sent lower case).
    pub currency: String,
    /// The provider's payment method id (`pm_…`).
    pub payment_method: String,
    pub idempotency_key: String,
}

/// A charge whose outcome is known, or not yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// The money was taken.
    Succeeded { intent_id: String, charge_id: Option<String> },
    /// The provider accepted the charge but has not finished it (`processing`): retrieve
    /// the intent again later.
    Pending { intent_id: String },
    /// No money was taken, and the provider said why.
    Declined(Decline),
}

/// Why a charge was declined, in the provider's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decline {
    /// The payment intent the attempt created, when the provider named one.
    pub intent_id: Option<String>,
    /// `error.code` (`card_declined`, `expired_card`, `resource_missing`, …) or, for an
    /// intent that ended without an error, its status (`requires_action`, `canceled`).
    pub code: String,
    /// `error.decline_code` (`insufficient_funds`, `generic_decline`, …).
    pub decline_code: Option<String>,
    pub message: String,
    pub kind: DeclineKind,
}

/// Whether trying again later, as a new attempt, can succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeclineKind {
    /// The issuer may approve later (`insufficient_funds`, `try_again_later`, …).
    Soft,
    /// It will not (`card_declined` with `generic_decline`, `expired_card`, `fraudulent`,
    /// an unknown payment method, an action the customer must take).
    Hard,
}

impl Decline {
    /// A one-line description for the `PaymentFailed` reason: codes first, then the
    /// provider's message.
    pub fn describe(&self) -> String {
        match &self.decline_code {
            Some(decline_code) => format!("{} ({decline_code}): {}", self.code, self.message),
            None => format!("{}: {}", self.code, self.message),
        }
    }
}

/// A refund of (part of) a successful charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRequest {
    pub intent_id: String,
    pub amount_minor: i64,
    pub idempotency_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundOutcome {
    /// Given back (`succeeded`), or on its way (`pending`: card refunds settle later, and
    /// a pending refund is not undone).
    Refunded { refund_id: String },
    /// The provider refused or failed it (`failed`, `canceled`, or a refusal such as
    /// `charge_already_refunded`): someone must look at it.
    Refused { refund_id: Option<String>, code: String, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The outcome is unknown: a timeout, a reset connection, `429`, `5xx`, an answer that
    /// cannot be read, an idempotency conflict. Ask again with the same key.
    #[error("outcome unknown: {reason}")]
    Unknown {
        reason: String,
        /// What the provider asked for (`Retry-After`), if anything.
        retry_after: Option<Duration>,
    },
    /// The provider refused the request itself, so nothing happened and repeating it will
    /// not help (an invalid key, a parameter it does not accept).
    #[error("refused by the provider ({status} {code}): {message}")]
    Refused { status: u16, code: String, message: String },
}

impl ProviderError {
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self::Unknown { reason: reason.into(), retry_after: None }
    }
}

/// What the payment service needs of a payment provider.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Creates and confirms a charge (`POST /v1/payment_intents`). Repeating the call with
    /// the same request answers the first result and never charges twice.
    fn charge(
        &self,
        request: &ChargeRequest,
    ) -> impl Future<Output = Result<ChargeOutcome, ProviderError>> + Send;

    /// The charge's current state (`GET /v1/payment_intents/{id}`).
    fn retrieve(
        &self,
        intent_id: &str,
    ) -> impl Future<Output = Result<ChargeOutcome, ProviderError>> + Send;

    /// Refunds part or all of a successful charge (`POST /v1/refunds`), idempotently.
    fn refund(
        &self,
        request: &RefundRequest,
    ) -> impl Future<Output = Result<RefundOutcome, ProviderError>> + Send;
}
