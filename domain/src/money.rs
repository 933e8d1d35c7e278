//! Money: an integer count of a currency's minor units (cents, pence, yen). Never floats.
//!
//! All arithmetic is checked: an amount that would overflow is a validation error at the
//! edge, never a wrapped number in the ledger.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ValidationError;

/// An ISO 4217 currency, parsed from its three-letter code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, ValidationError> {
        // The ISO code list is upper case; accepting "eur" would make two spellings of one
        // currency reach the store and the read models.
        iso_currency::Currency::from_code(code)
            .filter(|_| code.bytes().all(|b| b.is_ascii_uppercase()))
            .map(Self)
            .ok_or_else(|| {
                ValidationError::new("currency", "must be an ISO 4217 code such as \"EUR\"")
            })
    }

    /// Every code [`Currency::parse`] accepts, in alphabetical order.
    pub fn codes() -> &'static [&'static str] {
        static CODES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
        CODES.get_or_init(|| {
            // The crate lists its currencies only behind an optional dependency; every
            // three upper-case letters is a short enough search.
            let letters = b'A'..=b'Z';
            let mut codes = Vec::new();
            for a in letters.clone() {
                for b in letters.clone() {
                    for c in letters.clone() {
                        let code = [a, b, c];
                        let code = std::str::from_utf8(&code).unwrap_or_default();
                        if let Some(currency) = iso_currency::Currency::from_code(code) {
                            codes.push(currency.code());
                        }
                    }
                }
            }
            codes
        })
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Digits after the decimal point (2 for EUR, 0 for JPY, 3 for KWD). Currencies without
    /// minor units (gold, SDR) count as 0.
    pub fn minor_unit_digits(self) -> u32 {
        self.0.exponent().map_or(0, u32::from)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl schemars::JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An ISO 4217 currency code, upper case (\"EUR\", \"JPY\").",
            "type": "string",
            "pattern": "^[A-Z]{3}$",
        })
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// An amount in minor units of a currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Self {
        Self { amount_minor, currency }
    }

    pub fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// Renders the amount for people: `12.50 EUR`, `1250 JPY`, `-0.05 USD`.
    pub fn display(&self) -> String {
        let digits = self.currency.minor_unit_digits();
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let magnitude = self.amount_minor.unsigned_abs();
        if digits == 0 {
            return format!("{sign}{magnitude} {}", self.currency);
        }
        let scale = 10u64.pow(digits);
        format!(
            "{sign}{}.{:0width$} {}",
            magnitude / scale,
            magnitude % scale,
            self.currency,
            width = digits as usize
        )
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iso_codes_and_rejects_others() {
        assert_eq!(Currency::parse("EUR").map(Currency::code), Ok("EUR"));
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("XXY").is_err());
        assert!(Currency::parse("").is_err());
    }

    #[test]
    fn displays_with_the_currency_minor_units() -> Result<(), ValidationError> {
        assert_eq!(Money::new(1250, Currency::parse("EUR")?).display(), "12.50 EUR");
        assert_eq!(Money::new(5, Currency::parse("USD")?).display(), "0.05 USD");
        assert_eq!(Money::new(-5, Currency::parse("USD")?).display(), "-0.05 USD");
        assert_eq!(Money::new(1250, Currency::parse("JPY")?).display(), "1250 JPY");
        assert_eq!(Money::new(1250, Currency::parse("KWD")?).display(), "1.250 KWD");
        Ok(())
    }
}
