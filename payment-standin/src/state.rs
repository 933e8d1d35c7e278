//! Everything the stand-in knows, behind one mutex: the intents, the record of charges and
//! refunds, the scripts, the idempotency store and the switches.
//!
//! The lock is only ever taken for a few map operations and never held across an
//! `.await`; latency and stalls are slept with it released, so a stalled request never
//! holds up another.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;

use crate::answer::{self, Answer};
use crate::idempotency::Idempotency;
use crate::intent::{new_id, CreateIntent, Intents, StoredIntent};
use crate::records::{Charge, Intent, IntentStatus, Refund};
use crate::refund::{self, CreateRefund};
use crate::script::{Confirmation, Scripted, Scripts};

#[derive(Debug, Default)]
pub(crate) struct State {
    pub intents: Intents,
    pub charges: Vec<Charge>,
    pub refunds: Vec<Refund>,
    pub scripts: Scripts,
    pub idempotency: Idempotency,
    pub outage: bool,
    pub latency: Duration,
    pub requests: u64,
}

impl State {
    /// Creates the intent, confirms it, records the charge if money was taken, and gives
    /// the answer to store under the idempotency key.
    pub fn confirm(
        &mut self,
        request: CreateIntent,
        confirmation: Confirmation,
        idempotency_key: Option<String>,
    ) -> Answer {
        let mut intent = StoredIntent::new(request, idempotency_key);
        let mut declined = None;
        match confirmation {
            Confirmation::Succeed => {
                intent.status = IntentStatus::Succeeded;
                intent.charge_id = Some(new_id("ch"));
            }
            Confirmation::Processing { retrieves } => {
                intent.status = IntentStatus::Processing;
                intent.charge_id = Some(new_id("ch"));
                intent.retrieves_until_success = retrieves;
            }
            Confirmation::RequiresAction => intent.status = IntentStatus::RequiresAction,
            Confirmation::Decline { code, decline_code } => {
                // Stripe makes a failed charge for a declined attempt, and names it.
                let charge = new_id("ch");
                let error = answer::card_error(&code, decline_code.as_deref(), &charge);
                intent.status = IntentStatus::RequiresPaymentMethod;
                intent.charge_id = Some(charge);
                intent.last_payment_error = serde_json::to_value(&error).ok();
                declined = Some(error);
            }
        }
        tracing::info!(intent_id = %intent.id, status = ?intent.status, "payment intent confirmed");
        let body = intent.to_json();
        self.charges.extend(intent.charge());
        self.intents.insert(intent);
        match declined {
            Some(error) => answer::ApiError { payment_intent: Some(body), ..error }
                .answer(StatusCode::PAYMENT_REQUIRED),
            None => Answer::ok(body),
        }
    }

    /// The intent as it is now; a `processing` one moves on by one retrieve.
    pub fn retrieve(&mut self, id: &str) -> Answer {
        let Some(intent) = self.intents.get_mut(id) else {
            return answer::no_such(StatusCode::NOT_FOUND, "intent", "payment_intent", id);
        };
        if intent.status == IntentStatus::Processing {
            match intent.retrieves_until_success.checked_sub(1) {
                Some(left) => intent.retrieves_until_success = left,
                None => {
                    intent.status = IntentStatus::Succeeded;
                    self.charges.extend(intent.charge());
                }
            }
        }
        Answer::ok(intent.to_json())
    }

    pub fn refund(&mut self, request: &CreateRefund, idempotency_key: Option<String>) -> Answer {
        match refund::refund(&mut self.intents, request, idempotency_key) {
            Ok((refund, answer)) => {
                tracing::info!(refund_id = %refund.id, intent_id = %refund.intent_id, "refunded");
                self.refunds.push(refund);
                answer
            }
            Err(refusal) => refusal,
        }
    }
}

/// The state and the one API key, shared by the server's handlers and the [`StandIn`]
/// handle.
///
/// [`StandIn`]: crate::StandIn
#[derive(Clone, Debug)]
pub(crate) struct Shared(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    api_key: String,
    state: Mutex<State>,
}

impl Shared {
    pub fn new(api_key: String, latency: Duration) -> Self {
        let state = State { latency, ..State::default() };
        Self(Arc::new(Inner { api_key, state: Mutex::new(state) }))
    }

    /// The state. A handler that panicked mid-update cannot leave it worse than a test
    /// can read, so a poisoned lock is taken over rather than failing every request after.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn api_key(&self) -> &str {
        &self.0.api_key
    }

    /// The time a request spends being worked on, slept with the lock released.
    pub async fn work(&self) {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    pub fn script(&self, payment_method: &str, outcomes: Vec<Scripted>) {
        self.lock().scripts.append(payment_method, outcomes);
    }

    pub fn set_outage(&self, down: bool) {
        self.lock().outage = down;
    }

    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    pub fn charges(&self) -> Vec<Charge> {
        self.lock().charges.clone()
    }

    pub fn intents(&self) -> Vec<Intent> {
        self.lock().intents.iter().map(StoredIntent::record).collect()
    }

    pub fn refunds(&self) -> Vec<Refund> {
        self.lock().refunds.clone()
    }

    pub fn requests(&self) -> u64 {
        self.lock().requests
    }
}
