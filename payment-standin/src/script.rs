//! What the next charge of a payment method does: scripted outcomes first, in the order
//! they were queued, then the payment method's own behaviour — Stripe's test payment
//! methods as Stripe documents them, and `resource_missing` for any other.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One scripted outcome for the next charge of a payment method. Over HTTP (serde,
/// externally tagged): `"succeed"`, `{"decline": {"code": "card_declined",
/// "decline_code": "insufficient_funds"}}`, `{"processing": {"retrieves": 1}}`,
/// `"requires_action"`, `"server_error"`, `"rate_limited"`,
/// `{"charge_then_stall": 2000}` (milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scripted {
    /// The charge succeeds.
    Succeed,
    /// `402` card error; the intent is left at `requires_payment_method`.
    Decline {
        code: String,
        #[serde(default)]
        decline_code: Option<String>,
    },
    /// The intent answers `processing`, and so do the next `retrieves` retrieves of it;
    /// the retrieve after those finds it `succeeded` (and only then is the charge made).
    Processing { retrieves: u32 },
    /// `200` with status `requires_action` (3-D Secure): no charge.
    RequiresAction,
    /// `500` before charging; not stored under the idempotency key, so a retry with the
    /// same key goes on to the next outcome.
    ServerError,
    /// `429` before charging; not stored either.
    RateLimited,
    /// Charges and stores the result, then holds the response this long: the client times
    /// out not knowing, and its retry with the same key gets the stored success.
    ChargeThenStall(#[serde(with = "milliseconds")] Duration),
}

impl Scripted {
    /// `card_declined` / `insufficient_funds`: the issuer may approve later.
    pub fn soft_decline() -> Self {
        Self::decline("card_declined", Some("insufficient_funds"))
    }

    /// `card_declined` / `generic_decline`: it will not.
    pub fn hard_decline() -> Self {
        Self::decline("card_declined", Some("generic_decline"))
    }

    fn decline(code: &str, decline_code: Option<&str>) -> Self {
        Self::Decline { code: code.to_owned(), decline_code: decline_code.map(str::to_owned) }
    }
}

/// What the payment intent handler does for one charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Create the intent and confirm it this way, store the answer, and hold the answer
    /// back for `stall` if set.
    Confirm {
        confirmation: Confirmation,
        stall: Option<Duration>,
    },
    ServerError,
    RateLimited,
    UnknownPaymentMethod,
}

/// How a created intent is confirmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Confirmation {
    Succeed,
    Decline { code: String, decline_code: Option<String> },
    Processing { retrieves: u32 },
    RequiresAction,
}

impl From<Scripted> for Step {
    fn from(scripted: Scripted) -> Self {
        let confirm = |confirmation| Step::Confirm { confirmation, stall: None };
        match scripted {
            Scripted::Succeed => confirm(Confirmation::Succeed),
            Scripted::Decline { code, decline_code } => {
                confirm(Confirmation::Decline { code, decline_code })
            }
            Scripted::Processing { retrieves } => confirm(Confirmation::Processing { retrieves }),
            Scripted::RequiresAction => confirm(Confirmation::RequiresAction),
            Scripted::ServerError => Step::ServerError,
            Scripted::RateLimited => Step::RateLimited,
            Scripted::ChargeThenStall(stall) => {
                Step::Confirm { confirmation: Confirmation::Succeed, stall: Some(stall) }
            }
        }
    }
}

/// Stripe's test payment methods, as its testing guide lists them.
fn test_payment_method(payment_method: &str) -> Option<Scripted> {
    let outcome = match payment_method {
        "pm_card_visa" | "pm_card_mastercard" | "pm_card_amex" => Scripted::Succeed,
        "pm_card_chargeDeclined" => Scripted::hard_decline(),
        "pm_card_chargeDeclinedInsufficientFunds" => Scripted::soft_decline(),
        "pm_card_chargeDeclinedExpiredCard" => {
            Scripted::decline("expired_card", Some("expired_card"))
        }
        "pm_card_chargeDeclinedFraudulent" => {
            Scripted::decline("card_declined", Some("fraudulent"))
        }
        "pm_card_chargeDeclinedProcessingError" => {
            Scripted::decline("processing_error", Some("processing_error"))
        }
        "pm_card_authenticationRequired" => Scripted::RequiresAction,
        _ => return None,
    };
    Some(outcome)
}

/// The queued outcomes, per payment method.
#[derive(Debug, Default)]
pub(crate) struct Scripts {
    queued: HashMap<String, VecDeque<Scripted>>,
}

impl Scripts {
    pub fn append(&mut self, payment_method: &str, outcomes: Vec<Scripted>) {
        self.queued.entry(payment_method.to_owned()).or_default().extend(outcomes);
    }

    /// Takes the next queued outcome, or falls back on the payment method's own.
    pub fn next(&mut self, payment_method: &str) -> Step {
        let queued = self.queued.get_mut(payment_method).and_then(VecDeque::pop_front);
        match queued.or_else(|| test_payment_method(payment_method)) {
            Some(outcome) => outcome.into(),
            None => Step::UnknownPaymentMethod,
        }
    }
}

/// A `Duration` as whole milliseconds, the unit the control endpoints speak.
mod milliseconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_outcomes_come_first_in_order_then_the_payment_methods_own() {
        let mut scripts = Scripts::default();
        scripts.append("pm_card_visa", vec![Scripted::hard_decline()]);
        scripts.append("pm_card_visa", vec![Scripted::ServerError]);
        assert!(matches!(
            scripts.next("pm_card_visa"),
            Step::Confirm { confirmation: Confirmation::Decline { .. }, .. }
        ));
        assert_eq!(scripts.next("pm_card_visa"), Step::ServerError);
        assert_eq!(
            scripts.next("pm_card_visa"),
            Step::Confirm { confirmation: Confirmation::Succeed, stall: None }
        );
    }

    #[test]
    fn an_unknown_payment_method_is_missing_unless_scripted() {
        let mut scripts = Scripts::default();
        assert_eq!(scripts.next("pm_card_unheard_of"), Step::UnknownPaymentMethod);
        scripts.append("pm_card_unheard_of", vec![Scripted::Succeed]);
        assert!(matches!(scripts.next("pm_card_unheard_of"), Step::Confirm { .. }));
        assert_eq!(scripts.next("pm_card_unheard_of"), Step::UnknownPaymentMethod);
    }

    #[test]
    fn scripted_outcomes_read_and_write_as_the_control_endpoint_documents() {
        let json = r#"["succeed", {"decline": {"code": "card_declined", "decline_code": "insufficient_funds"}},
            {"decline": {"code": "expired_card"}}, {"processing": {"retrieves": 1}}, "requires_action",
            "server_error", "rate_limited", {"charge_then_stall": 1500}]"#;
        let outcomes: Vec<Scripted> = serde_json::from_str(json).expect("the documented shape");
        assert_eq!(
            outcomes,
            vec![
                Scripted::Succeed,
                Scripted::soft_decline(),
                Scripted::Decline { code: "expired_card".into(), decline_code: None },
                Scripted::Processing { retrieves: 1 },
                Scripted::RequiresAction,
                Scripted::ServerError,
                Scripted::RateLimited,
                Scripted::ChargeThenStall(Duration::from_millis(1500)),
            ]
        );
        let written = serde_json::to_value(Scripted::ChargeThenStall(Duration::from_secs(2)))
            .expect("serialisable");
        assert_eq!(written, serde_json::json!({"charge_then_stall": 2000}));
    }
}
