//! Refunds: `POST /v1/refunds` against a succeeded intent, never for more than is left of
//! it — the refusals Stripe gives (`charge_already_refunded`, `amount_too_large`, and
//! `payment_intent_unexpected_state` for an intent with nothing to refund) are what the
//! adapter must tell apart from a failed call.

use serde_json::{json, Value};

use crate::answer::{self, Answer};
use crate::form::Params;
use crate::intent::{new_id, now, Intents};
use crate::records::{IntentStatus, Refund};

/// The parameters of `POST /v1/refunds`, valid.
#[derive(Clone, Debug)]
pub(crate) struct CreateRefund {
    pub payment_intent: String,
    /// All that is left when absent, as Stripe does.
    pub amount: Option<i64>,
}

impl CreateRefund {
    pub fn from_params(params: &Params) -> Result<Self, Answer> {
        Ok(Self {
            payment_intent: params.required("payment_intent")?.to_owned(),
            amount: params.amount("amount")?,
        })
    }
}

/// Refunds against the intent, or refuses as Stripe refuses; the answer either way.
pub(crate) fn refund(
    intents: &mut Intents,
    request: &CreateRefund,
    idempotency_key: Option<String>,
) -> Result<(Refund, Answer), Answer> {
    let id = &request.payment_intent;
    let Some(intent) = intents.get_mut(id) else {
        return Err(answer::no_such(
            axum::http::StatusCode::BAD_REQUEST,
            "payment_intent",
            "payment_intent",
            id,
        ));
    };
    if intent.status != IntentStatus::Succeeded {
        return Err(answer::refund_refused(
            "payment_intent_unexpected_state",
            format!("This PaymentIntent ({id}) does not have a successful charge to refund."),
        ));
    }
    let charge = intent.charge_id.clone().unwrap_or_default();
    let left = intent.request.amount - intent.amount_refunded;
    if left <= 0 {
        return Err(answer::refund_refused(
            "charge_already_refunded",
            format!("Charge {charge} has already been refunded."),
        ));
    }
    let amount = request.amount.unwrap_or(left);
    if amount > left {
        return Err(answer::refund_refused(
            "amount_too_large",
            format!(
                "Refund amount ({amount}) is greater than unrefunded amount on charge ({left})."
            ),
        ));
    }
    intent.amount_refunded += amount;
    let refund = Refund {
        id: new_id("re"),
        intent_id: intent.id.clone(),
        amount,
        currency: intent.request.currency.clone(),
        idempotency_key,
    };
    let body = to_json(&refund, &charge);
    Ok((refund, Answer::ok(body)))
}

/// The Refund object. Card refunds in test mode succeed at once.
fn to_json(refund: &Refund, charge: &str) -> Value {
    json!({
        "id": refund.id,
        "object": "refund",
        "amount": refund.amount,
        "charge": charge,
        "created": now(),
        "currency": refund.currency,
        "metadata": {},
        "payment_intent": refund.intent_id,
        "reason": null,
        "status": "succeeded",
    })
}
