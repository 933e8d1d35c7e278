//! Bounded text values. Every string that reaches the ledger has a length limit and a
//! character set, so no request can store megabytes in a reason field or smuggle control
//! characters into a notification.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ValidationError;

/// What characters a bounded text may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextClass {
    /// Visible ASCII without spaces: ids and codes.
    Token,
    /// Free text without control characters, not blank.
    Text,
    /// Lower-case ASCII letters, digits, `_` and `-`.
    Code,
    /// An email address (a token with one `@` between a local part of at most 64
    /// characters and a domain that neither starts nor ends with `.`).
    Email,
    /// A payment provider's payment method id: `pm_` then ASCII letters, digits and `_`.
    /// Only the provider's token ever reaches the ledger, never card details.
    PaymentMethodId,
}

/// The rule a bounded text is checked by: its class and its length in characters. The
/// API states it in its schema from here, so the document and the check cannot drift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextRule {
    pub class: TextClass,
    pub min: usize,
    pub max: usize,
}

impl TextRule {
    pub const fn token(min: usize, max: usize) -> Self {
        Self { class: TextClass::Token, min, max }
    }

    pub fn check(&self, raw: &str) -> Result<(), String> {
        match self.class {
            TextClass::Token => check_token(raw, self.min, self.max),
            TextClass::Text => check_text(raw, self.min, self.max),
            TextClass::Code => check_code(raw, self.min, self.max),
            TextClass::Email => check_email(raw, self.min, self.max),
            TextClass::PaymentMethodId => check_payment_method_id(raw, self.min, self.max),
        }
    }

    /// The JSON Schema of a string this rule accepts: its class as a pattern, its length
    /// in characters (JSON Schema counts code points, as [`TextRule::check`] does).
    pub fn json_schema(&self) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": self.min,
            "maxLength": self.max,
            "pattern": self.pattern(),
        })
    }

    /// The class as an ECMA-262 regular expression (lengths are stated apart).
    pub fn pattern(&self) -> &'static str {
        match self.class {
            TextClass::Token => "^[!-~]*$",
            TextClass::Text => {
                "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
            }
            TextClass::Code => "^[a-z0-9_-]*$",
            TextClass::Email => "^[!-?A-~]{1,64}@(?:[!--/-?A-~]|[!--/-?A-~][!-?A-~]*[!--/-?A-~])$",
            TextClass::PaymentMethodId => "^pm_[A-Za-z0-9_]*$",
        }
    }
}

/// Visible ASCII without spaces, `min..=max` bytes: the shape of ids and codes.
pub(crate) fn check_token(raw: &str, min: usize, max: usize) -> Result<(), String> {
    check_length(raw, min, max)?;
    if raw.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("must contain only visible ASCII characters, without spaces".to_owned())
    }
}

/// Free text of `min..=max` characters, without control characters, not blank.
fn check_text(raw: &str, min: usize, max: usize) -> Result<(), String> {
    check_length(raw, min, max)?;
    if raw.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    if raw.trim().is_empty() {
        return Err("must not be blank".to_owned());
    }
    Ok(())
}

/// Lower-case ASCII letters, digits, `_` and `-`, `min..=max` bytes: the shape of codes that
/// name a category and are compared as written.
fn check_code(raw: &str, min: usize, max: usize) -> Result<(), String> {
    check_length(raw, min, max)?;
    if raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
        Ok(())
    } else {
        Err("must contain only lower-case letters a-z, digits, '_' and '-'".to_owned())
    }
}

fn check_payment_method_id(raw: &str, min: usize, max: usize) -> Result<(), String> {
    check_length(raw, min, max)?;
    match raw.strip_prefix("pm_") {
        Some(rest) if rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => Ok(()),
        _ => Err("must be the payment provider's payment method id, such as pm_card_visa \
                  (pm_ then letters, digits and '_'), never card details"
            .to_owned()),
    }
}

fn check_length(raw: &str, min: usize, max: usize) -> Result<(), String> {
    let length = raw.chars().count();
    if length < min || length > max {
        return Err(if min == max {
            format!("must be {min} characters long")
        } else {
            format!("must be {min} to {max} characters long")
        });
    }
    Ok(())
}

fn check_email(raw: &str, min: usize, max: usize) -> Result<(), String> {
    check_token(raw, min, max)?;
    match raw.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && local.len() <= 64
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(())
        }
        _ => Err("must be an email address such as ada@example.com".to_owned()),
    }
}

macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident, $field:literal, $rule:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// What a value must be.
            pub const RULE: TextRule = $rule;

            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                Self::RULE
                    .check(raw)
                    .map(|()| Self(raw.to_owned()))
                    .map_err(|message| ValidationError::new($field, message))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                Self::RULE.json_schema()
            }
        }
    };
}

bounded!(
    /// A stock-keeping unit code.
    Sku,
    "sku",
    TextRule::token(1, 64)
);
bounded!(
    /// Where notifications about the order go.
    CustomerEmail,
    "customer_email",
    TextRule { class: TextClass::Email, min: 3, max: 254 }
);
bounded!(
    /// How a payment was made (`card`, `sepa_debit`, `paypal`).
    PaymentMethod,
    "method",
    TextRule::token(1, 32)
);
bounded!(
    /// Why a payment failed, a refund was issued or an order was cancelled.
    Reason,
    "reason",
    TextRule { class: TextClass::Text, min: 1, max: 500 }
);
bounded!(
    /// Who carries a shipment.
    Carrier,
    "carrier",
    TextRule { class: TextClass::Text, min: 1, max: 100 }
);
bounded!(
    /// The carrier's tracking number.
    TrackingNumber,
    "tracking_number",
    TextRule::token(1, 100)
);
bounded!(
    /// Where an order came from (`api`, `web`, `pos`, `marketplace-x`). Recorded since
    /// version 2 of `OrderPlaced`; orders placed before that read as [`SalesChannel::unknown`].
    SalesChannel,
    "sales_channel",
    TextRule { class: TextClass::Code, min: 1, max: 32 }
);

bounded!(
    /// The payment provider's id of a charge or refund (`pi_…`, `re_…`), recorded on the
    /// payment events the payment service issues so each can be found at the provider.
    ProviderReference,
    "provider_reference",
    TextRule::token(1, 255)
);
bounded!(
    /// The payment provider's payment method id the payment service charges (`pm_…`).
    PaymentMethodId,
    "payment.payment_method",
    TextRule { class: TextClass::PaymentMethodId, min: 4, max: 255 }
);

impl SalesChannel {
    /// The channel of an order whose placement did not record one.
    pub fn unknown() -> Self {
        Self("unknown".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_refuse_spaces_control_characters_and_overlong_values() {
        assert!(Sku::parse("BOOK-1").is_ok());
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("two words").is_err());
        assert!(Sku::parse("tab\t").is_err());
        assert!(Sku::parse(&"x".repeat(64)).is_ok());
        assert!(Sku::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn text_refuses_blank_and_control_characters() {
        assert!(Reason::parse("card declined").is_ok());
        assert!(Reason::parse("   ").is_err());
        assert!(Reason::parse("line\nbreak").is_err());
        assert!(Reason::parse(&"é".repeat(500)).is_ok());
        assert!(Reason::parse(&"é".repeat(501)).is_err());
    }

    #[test]
    fn emails_need_one_at_sign_with_both_sides() {
        assert!(CustomerEmail::parse("ada@example.com").is_ok());
        assert!(CustomerEmail::parse("ada.example.com").is_err());
        assert!(CustomerEmail::parse("@example.com").is_err());
        assert!(CustomerEmail::parse("ada@").is_err());
        assert!(CustomerEmail::parse("a@b@c").is_err());
        assert!(CustomerEmail::parse("ada @example.com").is_err());
    }

    #[test]
    fn sales_channels_are_short_lower_case_codes() {
        assert!(SalesChannel::parse("api").is_ok());
        assert!(SalesChannel::parse("marketplace_de-2").is_ok());
        assert!(SalesChannel::parse(&"x".repeat(32)).is_ok());
        assert!(SalesChannel::parse(&"x".repeat(33)).is_err());
        assert!(SalesChannel::parse("").is_err());
        assert!(SalesChannel::parse("Web").is_err());
        assert!(SalesChannel::parse("point of sale").is_err());
        assert!(SalesChannel::parse("café").is_err());
        assert_eq!(SalesChannel::unknown().as_str(), "unknown");
    }

    #[test]
    fn payment_method_ids_are_provider_tokens_not_card_numbers() {
        assert!(PaymentMethodId::parse("pm_card_visa").is_ok());
        assert!(PaymentMethodId::parse("pm_1Q0PsIJvEtkwdCNYMSaVuRz6").is_ok());
        assert!(PaymentMethodId::parse("pm_").is_err());
        assert!(PaymentMethodId::parse("4242424242424242").is_err());
        assert!(PaymentMethodId::parse("pm_4242 4242 4242 4242").is_err());
        assert!(PaymentMethodId::parse("card_visa").is_err());
        assert!(PaymentMethodId::parse(&format!("pm_{}", "x".repeat(252))).is_ok());
        assert!(PaymentMethodId::parse(&format!("pm_{}", "x".repeat(253))).is_err());
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(Sku::parse("").map_err(|e| e.field), Err("sku".to_owned()));
    }
}
