//! The adapter for the payment provider the payment service charges through:
//! [`stripe::Stripe`] implements the payment service's [`PaymentProvider`] over the subset
//! of Stripe's API listed in `docs/payment-provider.md`; any provider (or stand-in)
//! speaking that subset can replace Stripe.
//!
//! The trait and its types live in `payment_service::provider` (re-exported here), so the
//! crates that only read the saga's state never link an HTTP client.

pub mod stripe;

pub use payment_service::provider::{
    ChargeOutcome, ChargeRequest, Decline, DeclineKind, PaymentProvider, ProviderError,
    RefundOutcome, RefundRequest,
};
