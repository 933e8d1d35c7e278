//! Whether a decline is worth a new attempt later: the one judgement the adapter makes
//! about a card, kept in one function so it can be read and tested as a table.
//!
//! Soft means the issuer may well approve the same card later (no money, a busy issuer, a
//! hiccup in processing); everything else is hard, including codes Stripe adds later: a
//! retry of a decline we do not understand costs the customer another failed attempt on
//! their statement, while a hard decline only asks them for another card.

use super::wire::ApiError;
use crate::{Decline, DeclineKind};

/// `decline_code`s after which the issuer may approve later.
const SOFT_DECLINE_CODES: &[&str] = &[
    "insufficient_funds",
    "try_again_later",
    "processing_error",
    "issuer_not_available",
    "reenter_transaction",
    "approve_with_id",
    "card_velocity_exceeded",
    "withdrawal_count_limit_exceeded",
];

/// The issuer's explicit "never again", which outranks any soft-looking `code`.
const NEVER_AGAIN: &str = "do_not_try_again";

pub(super) fn decline_kind(code: &str, decline_code: Option<&str>) -> DeclineKind {
    match decline_code {
        Some(NEVER_AGAIN) => DeclineKind::Hard,
        Some(decline_code) if SOFT_DECLINE_CODES.contains(&decline_code) => DeclineKind::Soft,
        _ if code == "processing_error" => DeclineKind::Soft,
        _ => DeclineKind::Hard,
    }
}

/// A decline from Stripe's error object (`402`'s `error`, or an intent's
/// `last_payment_error`).
pub(super) fn from_error(error: &ApiError, intent_id: Option<String>) -> Decline {
    let code = error.code_or_kind();
    let kind = decline_kind(&code, error.decline_code.as_deref());
    Decline {
        intent_id,
        code,
        decline_code: error.decline_code.clone(),
        message: error.message(),
        kind,
    }
}

/// A decline that is no card's fault and no issuer's: the charge stopped at a step the
/// ledger does not take (an action the customer must perform, a manual capture) or was
/// canceled. Trying the same again would stop at the same step.
pub(super) fn hard(intent_id: Option<String>, code: &str, message: impl Into<String>) -> Decline {
    Decline {
        intent_id,
        code: code.to_owned(),
        decline_code: None,
        message: message.into(),
        kind: DeclineKind::Hard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeclineKind::{Hard, Soft};

    #[test]
    fn declines_are_soft_only_when_the_issuer_may_approve_later() {
        let table: &[(&str, Option<&str>, DeclineKind)] = &[
            ("card_declined", Some("insufficient_funds"), Soft),
            ("card_declined", Some("try_again_later"), Soft),
            ("card_declined", Some("issuer_not_available"), Soft),
            ("card_declined", Some("reenter_transaction"), Soft),
            ("card_declined", Some("approve_with_id"), Soft),
            ("card_declined", Some("card_velocity_exceeded"), Soft),
            ("card_declined", Some("withdrawal_count_limit_exceeded"), Soft),
            ("processing_error", Some("processing_error"), Soft),
            ("processing_error", None, Soft),
            ("card_declined", Some("generic_decline"), Hard),
            ("card_declined", Some("fraudulent"), Hard),
            ("card_declined", Some("lost_card"), Hard),
            ("card_declined", Some("stolen_card"), Hard),
            ("card_declined", Some("do_not_try_again"), Hard),
            ("processing_error", Some("do_not_try_again"), Hard),
            ("card_declined", None, Hard),
            ("expired_card", Some("expired_card"), Hard),
            ("incorrect_cvc", Some("incorrect_cvc"), Hard),
            ("authentication_required", Some("authentication_required"), Hard),
            ("resource_missing", None, Hard),
            ("a_code_stripe_adds_next_year", Some("something_new"), Hard),
        ];
        for (code, decline_code, expected) in table {
            assert_eq!(
                decline_kind(code, *decline_code),
                *expected,
                "{code} / {decline_code:?} should be {expected:?}"
            );
        }
    }

    #[test]
    fn a_decline_keeps_the_providers_codes_and_message() {
        let error = ApiError {
            kind: "card_error".into(),
            code: Some("card_declined".into()),
            decline_code: Some("insufficient_funds".into()),
            message: Some("Your card has insufficient funds.".into()),
            ..ApiError::default()
        };
        let decline = from_error(&error, Some("pi_1".into()));
        assert_eq!(
            decline,
            Decline {
                intent_id: Some("pi_1".into()),
                code: "card_declined".into(),
                decline_code: Some("insufficient_funds".into()),
                message: "Your card has insufficient funds.".into(),
                kind: Soft,
            }
        );
    }

    #[test]
    fn an_error_without_a_code_is_named_by_its_type() {
        let error = ApiError { kind: "card_error".into(), ..ApiError::default() };
        assert_eq!(from_error(&error, None).code, "card_error");
    }
}
