//! A payment intent as the stand-in keeps it: created and confirmed in one request (the
//! only way the adapter creates them), then read back, advanced from `processing` by
//! retrieves, and refunded against.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::answer::{self, Answer};
use crate::form::Params;
use crate::records::{Charge, Intent, IntentStatus};

/// The parameters of `POST /v1/payment_intents`, valid.
#[derive(Clone, Debug)]
pub(crate) struct CreateIntent {
    pub amount: i64,
    pub currency: String,
    pub payment_method: String,
    pub metadata: BTreeMap<String, String>,
}

impl CreateIntent {
    pub fn from_params(params: &Params) -> Result<Self, Answer> {
        let amount = params.amount("amount")?.ok_or(answer::parameter_missing("amount"))?;
        let currency = params.required("currency")?;
        if currency.len() != 3 || !currency.bytes().all(|byte| byte.is_ascii_alphabetic()) {
            return Err(answer::parameter_invalid(
                "currency",
                format!("Invalid currency: {currency}."),
            ));
        }
        let payment_method = params.required("payment_method")?.to_owned();
        if params.get("confirm") != Some("true") {
            return Err(answer::parameter_invalid(
                "confirm",
                "The stand-in only creates payment intents confirmed at once: send confirm=true.",
            ));
        }
        Ok(Self {
            amount,
            currency: currency.to_ascii_lowercase(),
            payment_method,
            metadata: params.metadata(),
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct StoredIntent {
    pub id: String,
    pub request: CreateIntent,
    pub status: IntentStatus,
    pub charge_id: Option<String>,
    pub last_payment_error: Option<Value>,
    pub amount_refunded: i64,
    pub idempotency_key: Option<String>,
    /// Retrieves that still find a `processing` intent processing.
    pub retrieves_until_success: u32,
    created: u64,
}

impl StoredIntent {
    pub fn new(request: CreateIntent, idempotency_key: Option<String>) -> Self {
        Self {
            id: new_id("pi"),
            request,
            status: IntentStatus::Processing,
            charge_id: None,
            last_payment_error: None,
            amount_refunded: 0,
            idempotency_key,
            retrieves_until_success: 0,
            created: now(),
        }
    }

    /// The record of the money taken, once the intent has succeeded.
    pub fn charge(&self) -> Option<Charge> {
        if self.status != IntentStatus::Succeeded {
            return None;
        }
        Some(Charge {
            intent_id: self.id.clone(),
            charge_id: self.charge_id.clone()?,
            order_id: self.request.metadata.get("order_id").cloned(),
            amount: self.request.amount,
            currency: self.request.currency.clone(),
            payment_method: self.request.payment_method.clone(),
            idempotency_key: self.idempotency_key.clone(),
        })
    }

    pub fn record(&self) -> Intent {
        Intent {
            id: self.id.clone(),
            status: self.status,
            amount: self.request.amount,
            amount_refunded: self.amount_refunded,
            currency: self.request.currency.clone(),
            payment_method: self.request.payment_method.clone(),
            order_id: self.request.metadata.get("order_id").cloned(),
            charge_id: self.charge_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
        }
    }

    /// The PaymentIntent object, with the fields Stripe documents that the stand-in has.
    pub fn to_json(&self) -> Value {
        let succeeded = self.status == IntentStatus::Succeeded;
        let next_action = (self.status == IntentStatus::RequiresAction)
            .then(|| json!({"type": "use_stripe_sdk", "use_stripe_sdk": {}}));
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.request.amount,
            "amount_received": if succeeded { self.request.amount } else { 0 },
            "capture_method": "automatic",
            "confirmation_method": "automatic",
            "created": self.created,
            "currency": self.request.currency,
            "last_payment_error": self.last_payment_error,
            "latest_charge": self.charge_id,
            "livemode": false,
            "metadata": self.request.metadata,
            "next_action": next_action,
            "payment_method": self.request.payment_method,
            "payment_method_types": ["card"],
            "status": self.status,
        })
    }
}

/// Every intent, in the order created, found by id.
#[derive(Debug, Default)]
pub(crate) struct Intents {
    all: Vec<StoredIntent>,
    by_id: HashMap<String, usize>,
}

impl Intents {
    pub fn insert(&mut self, intent: StoredIntent) {
        self.by_id.insert(intent.id.clone(), self.all.len());
        self.all.push(intent);
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut StoredIntent> {
        let index = *self.by_id.get(id)?;
        self.all.get_mut(index)
    }

    pub fn iter(&self) -> impl Iterator<Item = &StoredIntent> {
        self.all.iter()
    }
}

/// A Stripe-looking id: the object's prefix and 24 random letters and digits.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_alphanumeric(24))
}

fn random_alphanumeric(length: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric).take(length).collect()
}

/// Seconds since the epoch, as Stripe's `created`.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0)
}
