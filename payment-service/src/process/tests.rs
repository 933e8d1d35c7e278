//! The process's transitions, one specification each.
use super::*;
use std::time::Duration;

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        soft_decline_retry_after: Duration::from_secs(60),
        unknown_retry_max: Duration::from_secs(30),
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
}

fn started() -> PaymentProcess {
    PaymentProcess::started(Uuid::nil(), "c-1".into(), "pm_card_visa".into(), Uuid::nil(), 7, now())
}

#[test]
fn an_attempt_keeps_its_key_and_amount_until_its_outcome_is_recorded() {
    let mut process = started();
    process.begin_charge(3000, "EUR", now());
    let first = process.charge.clone();
    process.outcome_unknown(None, "timeout".into(), &policy(), now());
    process.outcome_unknown(Some("pi_1".into()), "502".into(), &policy(), now());
    let charge = process.charge.clone().expect("still in flight");
    assert_eq!(Some(&charge.idempotency_key), first.as_ref().map(|c| &c.idempotency_key));
    assert_eq!(charge.amount_minor, 3000);
    assert_eq!(charge.intent_id.as_deref(), Some("pi_1"));
    assert_eq!(process.attempts, 1, "a repeat is the same attempt");
}

#[test]
fn each_new_attempt_has_a_new_key_and_payment_id() {
    let mut process = started();
    process.begin_charge(3000, "EUR", now());
    let first = process.charge.clone().expect("charging");
    let declined = Ended::Declined { soft: true, detail: "insufficient_funds".into() };
    process.attempt_recorded(declined, Some(Uuid::from_u128(1)), 8, &policy(), now());
    process.begin_charge(3000, "EUR", now());
    let second = process.charge.clone().expect("charging");
    assert_ne!(first.idempotency_key, second.idempotency_key);
    assert_ne!(first.payment_id, second.payment_id);
}

#[test]
fn soft_declines_are_retried_later_until_the_limit_then_the_order_is_cancelled() {
    let mut process = started();
    for attempt in 1..=3u32 {
        process.begin_charge(3000, "EUR", now());
        let declined = Ended::Declined { soft: true, detail: "insufficient_funds".into() };
        process.attempt_recorded(
            declined,
            Some(Uuid::from_u128(attempt.into())),
            8,
            &policy(),
            now(),
        );
        if attempt < 3 {
            assert_eq!(process.step, Step::Charging);
            let wait = policy().soft_decline_retry_after(attempt);
            assert_eq!(process.due_at, Some(now() + wait));
        }
    }
    assert_eq!(process.step, Step::Cancelling { reason: PAYMENT_FAILED.into() });
    assert_eq!(process.due_at, Some(now()));
    assert_eq!(process.cause, Uuid::from_u128(3), "the cancel names the last failure");
    assert_eq!(process.outcomes.len(), 3);
}

#[test]
fn a_hard_decline_cancels_at_once() {
    let mut process = started();
    process.begin_charge(3000, "EUR", now());
    let declined = Ended::Declined { soft: false, detail: "expired_card".into() };
    process.attempt_recorded(declined, Some(Uuid::from_u128(9)), 8, &policy(), now());
    assert_eq!(process.step, Step::Cancelling { reason: PAYMENT_FAILED.into() });
}

#[test]
fn a_cancellation_request_waits_for_the_charge_in_flight() {
    let process = started();
    let mut process = PaymentProcess::cancellation_requested(
        Some(process),
        Uuid::nil(),
        "c-1".into(),
        "changed mind".into(),
        Uuid::from_u128(5),
        9,
        now(),
    );
    assert_eq!(process.step, Step::Cancelling { reason: "changed mind".into() });
    assert_eq!(process.cause, Uuid::from_u128(5));
    // A charge that succeeds now is recorded and then refunded: the step stays.
    process.begin_charge(3000, "EUR", now());
    process.charge_succeeded("pi_1".into(), now());
    process.attempt_recorded(Ended::Succeeded, Some(Uuid::from_u128(6)), 10, &policy(), now());
    assert_eq!(process.step, Step::Cancelling { reason: "changed mind".into() });
}

#[test]
fn a_cancellation_elsewhere_closes_an_idle_process_only() {
    assert_eq!(started().cancelled_elsewhere(9).step, Step::Closed);
    let mut busy = started();
    busy.begin_charge(3000, "EUR", now());
    assert_eq!(busy.cancelled_elsewhere(9).step, Step::Charging);
}

#[test]
fn an_unfinished_refund_is_reused_and_a_later_one_gets_a_new_key() {
    let mut process = started();
    let first = process.refund_for("charge_1", "pi_1", 3000);
    assert_eq!(process.refund_for("charge_1", "pi_1", 2000), first, "same until recorded");
    process.refund_made(&first.idempotency_key, "re_1".into());
    process.refund_recorded(&first.idempotency_key, Some(Uuid::from_u128(2)), 11);
    let second = process.refund_for("charge_1", "pi_1", 500);
    assert_ne!(second.idempotency_key, first.idempotency_key);
    assert_eq!(process.cause, Uuid::from_u128(2));
}
