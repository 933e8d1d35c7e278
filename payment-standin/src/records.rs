//! What the stand-in remembers and tells its tests: every charge, intent and refund, in
//! the order they were made. Snapshots, copied out from under the lock.

use serde::{Deserialize, Serialize};

/// A successful charge: money the provider took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub intent_id: String,
    pub charge_id: String,
    /// `metadata[order_id]`, when the request carried it.
    pub order_id: Option<String>,
    pub amount: i64,
    /// Lower case, as Stripe stores it.
    pub currency: String,
    pub payment_method: String,
    pub idempotency_key: Option<String>,
}

/// A payment intent, whatever became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub id: String,
    pub status: IntentStatus,
    pub amount: i64,
    pub amount_refunded: i64,
    pub currency: String,
    pub payment_method: String,
    pub order_id: Option<String>,
    pub charge_id: Option<String>,
    pub idempotency_key: Option<String>,
}

/// The statuses the stand-in's intents can reach, named as Stripe names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    Succeeded,
    Processing,
    /// Declined: the attempt failed and the intent waits for another payment method.
    RequiresPaymentMethod,
    RequiresAction,
}

/// A refund the provider made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub intent_id: String,
    pub amount: i64,
    pub currency: String,
    pub idempotency_key: Option<String>,
}
