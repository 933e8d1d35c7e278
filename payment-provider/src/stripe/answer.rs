//! How an answer from Stripe becomes an outcome. Pure: the HTTP exchange is done and read
//! in full before any of this runs, so every rule here is tested without a server.
//!
//! The rule that matters most: when in doubt, the outcome is *unknown*, never a decline or
//! a refusal. An unknown outcome is asked again with the same idempotency key, which is
//! always safe; treating a charge that did happen as failed would cancel a paid order.
//! So `408`, `409`, `429`, `5xx`, an idempotency conflict, a status outside `2xx`/`4xx`,
//! a status the adapter does not know and a body it cannot read are all unknown.

use std::time::Duration;

use super::decline;
use super::wire::{self, ApiError, ErrorEnvelope, IntentStatus, RefundStatus};
use crate::{ChargeOutcome, ProviderError, RefundOutcome};

/// An HTTP answer, read in full.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    /// `Retry-After`, in seconds, when the provider sent it.
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// How much of an unreadable body reaches the log: enough to recognise a proxy's error
/// page or a truncated JSON document, not so much that a large answer floods the log.
const LOGGED_BODY_CHARS: usize = 500;

/// Refund errors that refuse this refund (the money is not there to give back, or not
/// any more) rather than the request: they are an outcome for someone to look at, not a
/// failure of the call.
const REFUND_REFUSALS: &[&str] = &[
    "charge_already_refunded",
    "charge_disputed",
    "amount_too_large",
    "amount_too_small",
    "payment_intent_unexpected_state",
];

/// The answer to creating or retrieving a payment intent.
pub(super) fn payment_intent(answer: &Answer) -> Result<ChargeOutcome, ProviderError> {
    if is_success(answer.status) {
        let intent: wire::PaymentIntent = parse(answer)?;
        return intent_outcome(intent, answer);
    }
    let error = failure(answer)?;
    if answer.status == 402 {
        let intent_id = error.payment_intent.as_ref().map(|intent| intent.id().to_owned());
        return Ok(ChargeOutcome::Declined(decline::from_error(&error, intent_id)));
    }
    // Stripe cannot tell an unknown payment method from one of another account or one
    // that was detached; for the order it is the same: this card will never be charged.
    if error.code.as_deref() == Some("resource_missing")
        && error.param.as_deref() == Some("payment_method")
    {
        let decline = decline::hard(None, "resource_missing", error.message());
        return Ok(ChargeOutcome::Declined(decline));
    }
    Err(refused(answer.status, &error))
}

fn intent_outcome(
    intent: wire::PaymentIntent,
    answer: &Answer,
) -> Result<ChargeOutcome, ProviderError> {
    let wire::PaymentIntent { id, status, latest_charge, last_payment_error } = intent;
    match (status, last_payment_error) {
        (IntentStatus::Succeeded, _) => Ok(ChargeOutcome::Succeeded {
            intent_id: id,
            charge_id: latest_charge.map(|charge| charge.id().to_owned()),
        }),
        (IntentStatus::Processing, _) => Ok(ChargeOutcome::Pending { intent_id: id }),
        (IntentStatus::RequiresPaymentMethod, Some(error)) => {
            Ok(ChargeOutcome::Declined(decline::from_error(&error, Some(id))))
        }
        (
            IntentStatus::RequiresPaymentMethod
            | IntentStatus::RequiresConfirmation
            | IntentStatus::RequiresAction
            | IntentStatus::RequiresCapture
            | IntentStatus::Canceled,
            _,
        ) => {
            let message = format!(
                "the payment intent stopped at `{}`, a step the ledger does not take",
                status.code()
            );
            Ok(ChargeOutcome::Declined(decline::hard(Some(id), status.code(), message)))
        }
        (IntentStatus::Unrecognised, _) => {
            log_unreadable(answer, "a payment intent status the adapter does not know");
            Err(unknown(
                answer,
                "Stripe answered a payment intent status the adapter does not know",
            ))
        }
    }
}

/// The answer to creating a refund.
pub(super) fn refund(answer: &Answer) -> Result<RefundOutcome, ProviderError> {
    if is_success(answer.status) {
        let refund: wire::Refund = parse(answer)?;
        return match refund.status {
            RefundStatus::Succeeded | RefundStatus::Pending => {
                Ok(RefundOutcome::Refunded { refund_id: refund.id })
            }
            // A card refund never asks for an action; another method's does, and only a
            // person can provide it.
            RefundStatus::Failed | RefundStatus::Canceled | RefundStatus::RequiresAction => {
                let message = refund
                    .failure_reason
                    .unwrap_or_else(|| format!("the refund ended `{}`", refund.status.code()));
                Ok(RefundOutcome::Refused {
                    refund_id: Some(refund.id),
                    code: refund.status.code().to_owned(),
                    message,
                })
            }
            RefundStatus::Unrecognised => {
                log_unreadable(answer, "a refund status the adapter does not know");
                Err(unknown(answer, "Stripe answered a refund status the adapter does not know"))
            }
        };
    }
    let error = failure(answer)?;
    if answer.status == 400 && refuses_the_refund(&error) {
        return Ok(RefundOutcome::Refused {
            refund_id: None,
            code: error.code_or_kind(),
            message: error.message(),
        });
    }
    Err(refused(answer.status, &error))
}

fn refuses_the_refund(error: &ApiError) -> bool {
    match error.code.as_deref() {
        // The intent we charged is not there (any more): nothing to give back from.
        Some("resource_missing") => error.param.as_deref() == Some("payment_intent"),
        Some(code) => REFUND_REFUSALS.contains(&code),
        None => false,
    }
}

/// The error of an answer outside `2xx`, or why that answer leaves the outcome unknown.
fn failure(answer: &Answer) -> Result<ApiError, ProviderError> {
    let status = answer.status;
    let parsed = serde_json::from_slice::<ErrorEnvelope>(&answer.body).map(|body| body.error);
    let transient = matches!(status, 408 | 409 | 429) || !(400..500).contains(&status);
    if transient {
        let detail = match &parsed {
            Ok(error) => format!(": {}", error.message()),
            Err(_) => String::new(),
        };
        return Err(unknown(answer, format!("Stripe answered {status}{detail}")));
    }
    let error = parsed.map_err(|parse_error| {
        log_unreadable(answer, &parse_error.to_string());
        unknown(answer, format!("Stripe answered {status} with a body the adapter cannot read"))
    })?;
    // Another request with this key is in flight, or the key was first used with other
    // parameters. Either way the first request's outcome is what counts, and is unknown.
    if error.kind == "idempotency_error" {
        return Err(unknown(
            answer,
            format!("Stripe refused the idempotency key ({status}): {}", error.message()),
        ));
    }
    Ok(error)
}

fn parse<T: serde::de::DeserializeOwned>(answer: &Answer) -> Result<T, ProviderError> {
    serde_json::from_slice(&answer.body).map_err(|parse_error| {
        log_unreadable(answer, &parse_error.to_string());
        unknown(
            answer,
            format!("Stripe answered {} with a body the adapter cannot read", answer.status),
        )
    })
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn refused(status: u16, error: &ApiError) -> ProviderError {
    ProviderError::Refused { status, code: error.code_or_kind(), message: error.message() }
}

fn unknown(answer: &Answer, reason: impl Into<String>) -> ProviderError {
    ProviderError::Unknown { reason: reason.into(), retry_after: answer.retry_after }
}

/// Logs what could not be read, so the next person can see what the provider said. The
/// body is the provider's, never the request: no key or header can reach the log here.
fn log_unreadable(answer: &Answer, problem: &str) {
    tracing::warn!(
        status = answer.status,
        problem,
        body = %excerpt(&answer.body),
        "the payment provider's answer cannot be read"
    );
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut chars = text.chars();
    let mut excerpt: String = chars.by_ref().take(LOGGED_BODY_CHARS).collect();
    if chars.next().is_some() {
        excerpt.push('…');
    }
    excerpt
}

#[cfg(test)]
mod tests;
