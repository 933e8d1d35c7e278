//! A stand-in for the payment provider: the subset of Stripe's API that
//! `payment_provider::stripe::Stripe` uses, served over real HTTP so the adapter, its
//! client, timeouts and retries are exercised exactly as against Stripe.
//!
//! It behaves as Stripe documents its test mode: the test payment methods
//! (`pm_card_visa`, `pm_card_chargeDeclined`, …) succeed or decline as they do there, and
//! `Idempotency-Key` is honoured the way Stripe honours it — the first result under a key
//! is stored and replayed, a key reused with other parameters is refused, and a request
//! refused before any work was done is not stored, so its retry can still succeed.
//!
//! On top of that it does what Stripe cannot be asked to do: decline, stall, fail or go
//! down on cue ([`Scripted`], [`StandIn::set_outage`], [`StandIn::set_latency`]), and
//! tell afterwards exactly which charges and refunds were made ([`StandIn::charges`]).
//! The same controls are served over HTTP under `/_standin/…` for the binary.
//!
//! Everything lives in memory behind one mutex, never held across an `.await`.

mod answer;
mod form;
mod idempotency;
mod intent;
mod records;
mod refund;
mod reservation;
mod routes;
mod script;
mod server;
mod state;

pub use records::{Charge, Intent, IntentStatus, Refund};
pub use script::Scripted;
pub use server::{Options, StandIn};
