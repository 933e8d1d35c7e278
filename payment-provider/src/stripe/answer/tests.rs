//! Each of Stripe's answers, as it documents them, and the outcome the adapter draws.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::{Decline, DeclineKind};

fn answer(status: u16, body: serde_json::Value) -> Answer {
    Answer { status, retry_after: None, body: body.to_string().into_bytes() }
}

fn raw(status: u16, body: &str) -> Answer {
    Answer { status, retry_after: None, body: body.as_bytes().to_vec() }
}

fn intent(status: &str) -> serde_json::Value {
    json!({
        "id": "pi_1", "object": "payment_intent", "status": status,
        "latest_charge": "ch_1", "last_payment_error": null, "amount": 1000
    })
}

fn card_error(code: &str, decline_code: &str) -> serde_json::Value {
    json!({"error": {
        "type": "card_error", "code": code, "decline_code": decline_code,
        "message": "Your card was declined.", "charge": "ch_2",
        "payment_intent": {"id": "pi_2", "status": "requires_payment_method"}
    }})
}

fn is_unknown<T: std::fmt::Debug>(result: Result<T, ProviderError>) -> bool {
    matches!(result, Err(ProviderError::Unknown { .. }))
}

#[test]
fn a_succeeded_intent_is_a_success_with_its_charge() {
    let outcome = payment_intent(&answer(200, intent("succeeded")));
    assert_eq!(
        outcome.ok(),
        Some(ChargeOutcome::Succeeded { intent_id: "pi_1".into(), charge_id: Some("ch_1".into()) })
    );
}

#[test]
fn an_expanded_latest_charge_is_read_for_its_id() {
    let mut body = intent("succeeded");
    body["latest_charge"] = json!({"id": "ch_9", "object": "charge"});
    let outcome = payment_intent(&answer(200, body));
    assert_eq!(
        outcome.ok(),
        Some(ChargeOutcome::Succeeded { intent_id: "pi_1".into(), charge_id: Some("ch_9".into()) })
    );
}

#[test]
fn a_processing_intent_is_pending() {
    let outcome = payment_intent(&answer(200, intent("processing")));
    assert_eq!(outcome.ok(), Some(ChargeOutcome::Pending { intent_id: "pi_1".into() }));
}

#[test]
fn an_intent_back_at_requires_payment_method_is_declined_by_its_last_error() {
    let mut body = intent("requires_payment_method");
    body["last_payment_error"] = card_error("card_declined", "insufficient_funds")["error"].clone();
    let outcome = payment_intent(&answer(200, body));
    assert_eq!(
        outcome.ok(),
        Some(ChargeOutcome::Declined(Decline {
            intent_id: Some("pi_1".into()),
            code: "card_declined".into(),
            decline_code: Some("insufficient_funds".into()),
            message: "Your card was declined.".into(),
            kind: DeclineKind::Soft,
        }))
    );
}

#[test]
fn an_intent_stopped_at_a_step_the_ledger_does_not_take_is_a_hard_decline_named_by_status() {
    for status in [
        "requires_action",
        "requires_confirmation",
        "requires_capture",
        "canceled",
        "requires_payment_method",
    ] {
        let outcome = payment_intent(&answer(200, intent(status)));
        let Ok(ChargeOutcome::Declined(decline)) = outcome else {
            panic!("{status} should be declined, was {outcome:?}");
        };
        assert_eq!(decline.code, status);
        assert_eq!(decline.kind, DeclineKind::Hard);
        assert_eq!(decline.intent_id.as_deref(), Some("pi_1"));
    }
}

#[test]
fn an_intent_status_the_adapter_does_not_know_leaves_the_outcome_unknown() {
    assert!(is_unknown(payment_intent(&answer(200, intent("teleported")))));
}

#[test]
fn a_402_card_error_is_a_decline_of_the_intent_it_names() {
    let outcome = payment_intent(&answer(402, card_error("card_declined", "generic_decline")));
    assert_eq!(
        outcome.ok(),
        Some(ChargeOutcome::Declined(Decline {
            intent_id: Some("pi_2".into()),
            code: "card_declined".into(),
            decline_code: Some("generic_decline".into()),
            message: "Your card was declined.".into(),
            kind: DeclineKind::Hard,
        }))
    );
}

#[test]
fn an_unknown_payment_method_is_a_hard_decline() {
    let body = json!({"error": {
        "type": "invalid_request_error", "code": "resource_missing", "param": "payment_method",
        "message": "No such PaymentMethod: 'pm_nope'"
    }});
    let Ok(ChargeOutcome::Declined(decline)) = payment_intent(&answer(400, body)) else {
        panic!("an unknown payment method should be declined");
    };
    assert_eq!((decline.code.as_str(), decline.kind), ("resource_missing", DeclineKind::Hard));
}

#[test]
fn a_missing_intent_is_refused_not_declined() {
    let body = json!({"error": {
        "type": "invalid_request_error", "code": "resource_missing", "param": "intent",
        "message": "No such payment_intent: 'pi_nope'"
    }});
    let outcome = payment_intent(&answer(404, body));
    assert!(matches!(
        outcome,
        Err(ProviderError::Refused { status: 404, ref code, .. }) if code == "resource_missing"
    ));
}

#[test]
fn an_idempotency_error_leaves_the_outcome_unknown_whatever_its_status() {
    let body = json!({"error": {"type": "idempotency_error", "message": "Keys for idempotent requests can only be used with the same parameters they were first used with."}});
    assert!(is_unknown(payment_intent(&answer(400, body.clone()))));
    assert!(is_unknown(payment_intent(&answer(409, body.clone()))));
    assert!(is_unknown(refund(&answer(400, body))));
}

#[test]
fn rate_limits_server_errors_and_odd_statuses_leave_the_outcome_unknown() {
    let body = json!({"error": {"type": "api_error", "message": "Something went wrong."}});
    for status in [408, 409, 429, 500, 502, 503, 504, 302, 101] {
        assert!(is_unknown(payment_intent(&answer(status, body.clone()))), "{status}");
        assert!(is_unknown(payment_intent(&raw(status, "<html>Bad gateway</html>"))), "{status}");
        assert!(is_unknown(refund(&answer(status, body.clone()))), "{status}");
    }
}

#[test]
fn an_unknown_outcome_carries_the_retry_after_the_provider_asked_for() {
    let mut rate_limited = raw(429, "");
    rate_limited.retry_after = Some(Duration::from_secs(7));
    let outcome = payment_intent(&rate_limited);
    assert!(matches!(
        outcome,
        Err(ProviderError::Unknown { retry_after: Some(after), .. }) if after == Duration::from_secs(7)
    ));
}

#[test]
fn an_invalid_key_or_parameter_is_refused_named_by_its_code_or_type() {
    let bad_key = json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****"}});
    assert!(matches!(
        payment_intent(&answer(401, bad_key)),
        Err(ProviderError::Refused { status: 401, ref code, .. }) if code == "invalid_request_error"
    ));
    let bad_parameter = json!({"error": {"type": "invalid_request_error", "code": "parameter_missing", "param": "amount", "message": "Missing required param: amount."}});
    assert!(matches!(
        payment_intent(&answer(400, bad_parameter)),
        Err(ProviderError::Refused { status: 400, ref code, .. }) if code == "parameter_missing"
    ));
}

#[test]
fn a_body_that_cannot_be_read_leaves_the_outcome_unknown() {
    for status in [200, 400, 401, 402] {
        assert!(is_unknown(payment_intent(&raw(status, "not json at all"))), "{status}");
        assert!(is_unknown(refund(&raw(status, "{\"truncated\": "))), "{status}");
    }
    assert!(is_unknown(payment_intent(&answer(200, json!({"id": "pi_1"})))));
}

#[test]
fn a_succeeded_or_pending_refund_is_refunded() {
    for status in ["succeeded", "pending"] {
        let body = json!({"id": "re_1", "object": "refund", "status": status, "amount": 500});
        assert_eq!(
            refund(&answer(200, body)).ok(),
            Some(RefundOutcome::Refunded { refund_id: "re_1".into() })
        );
    }
}

#[test]
fn a_failed_or_canceled_refund_is_refused_with_its_reason() {
    let body =
        json!({"id": "re_1", "status": "failed", "failure_reason": "expired_or_canceled_card"});
    assert_eq!(
        refund(&answer(200, body)).ok(),
        Some(RefundOutcome::Refused {
            refund_id: Some("re_1".into()),
            code: "failed".into(),
            message: "expired_or_canceled_card".into(),
        })
    );
    let body = json!({"id": "re_2", "status": "canceled"});
    assert!(matches!(
        refund(&answer(200, body)),
        Ok(RefundOutcome::Refused { ref code, .. }) if code == "canceled"
    ));
}

#[test]
fn a_refund_the_money_is_not_there_for_is_a_refused_outcome_not_an_error() {
    for code in ["charge_already_refunded", "amount_too_large", "payment_intent_unexpected_state"] {
        let body =
            json!({"error": {"type": "invalid_request_error", "code": code, "message": "no"}});
        assert_eq!(
            refund(&answer(400, body)).ok(),
            Some(RefundOutcome::Refused {
                refund_id: None,
                code: code.into(),
                message: "no".into()
            }),
        );
    }
    let missing = json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "payment_intent", "message": "No such payment_intent"}});
    assert!(matches!(refund(&answer(400, missing)), Ok(RefundOutcome::Refused { .. })));
}

#[test]
fn a_refund_request_refused_for_itself_is_an_error() {
    let bad_key = json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key"}});
    assert!(matches!(
        refund(&answer(401, bad_key)),
        Err(ProviderError::Refused { status: 401, .. })
    ));
    let bad_parameter = json!({"error": {"type": "invalid_request_error", "code": "parameter_invalid_integer", "param": "amount", "message": "Invalid integer"}});
    assert!(matches!(
        refund(&answer(400, bad_parameter)),
        Err(ProviderError::Refused { status: 400, .. })
    ));
}

#[test]
fn the_logged_excerpt_of_a_long_body_is_cut_on_a_character_boundary() {
    let body = "é".repeat(2 * LOGGED_BODY_CHARS);
    let logged = excerpt(body.as_bytes());
    assert_eq!(logged.chars().count(), LOGGED_BODY_CHARS + 1);
    assert!(logged.ends_with('…'));
    assert_eq!(excerpt(b"short"), "short");
}
