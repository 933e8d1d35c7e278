//! Bounded text values. Every string that reaches the ledger has a length limit and a
//! character set, so no request can store megabytes in a reason field or smuggle control
//! characters into a notification.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ValidationError;

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

fn check_email(raw: &str) -> Result<(), String> {
    check_token(raw, 3, 254)?;
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
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(raw)
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
    };
}

bounded!(
    /// A stock-keeping unit code.
    Sku,
    "sku",
    |raw| check_token(raw, 1, 64)
);
bounded!(
    /// Where notifications about the order go.
    CustomerEmail,
    "customer_email",
    check_email
);
bounded!(
    /// How a payment was made (`card`, `sepa_debit`, `paypal`).
    PaymentMethod,
    "method",
    |raw| check_token(raw, 1, 32)
);
bounded!(
    /// Why a payment failed, a refund was issued or an order was cancelled.
    Reason,
    "reason",
    |raw| check_text(raw, 1, 500)
);
bounded!(
    /// Who carries a shipment.
    Carrier,
    "carrier",
    |raw| check_text(raw, 1, 100)
);
bounded!(
    /// The carrier's tracking number.
    TrackingNumber,
    "tracking_number",
    |raw| check_token(raw, 1, 100)
);

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
    fn errors_name_the_field() {
        assert_eq!(Sku::parse("").map_err(|e| e.field), Err("sku".to_owned()));
    }
}
