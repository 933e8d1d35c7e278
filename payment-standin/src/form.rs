//! The form-encoded parameters of a request, as Stripe takes them: flat pairs with
//! bracketed names for nested ones (`metadata[order_id]`, `payment_method_types[]`).
//!
//! The pairs are kept as sent, so the idempotency fingerprint covers every parameter —
//! including ones the stand-in does not read, as Stripe's does.

use std::collections::BTreeMap;

use crate::answer::{self, Answer};

pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(body: &[u8]) -> Result<Self, Answer> {
        serde_urlencoded::from_bytes(body).map(Self).map_err(|_| answer::body_unreadable())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn required(&self, name: &'static str) -> Result<&str, Answer> {
        self.get(name).filter(|value| !value.is_empty()).ok_or(answer::parameter_missing(name))
    }

    /// An amount in minor units: a whole number of at least 1.
    pub fn amount(&self, name: &'static str) -> Result<Option<i64>, Answer> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.parse::<i64>() {
            Ok(amount) if amount > 0 => Ok(Some(amount)),
            _ => Err(answer::parameter_invalid_integer(name, value)),
        }
    }

    /// `metadata[key]=value` pairs.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter_map(|(name, value)| {
                let key = name.strip_prefix("metadata[")?.strip_suffix(']')?;
                Some((key.to_owned(), value.clone()))
            })
            .collect()
    }

    /// What identifies the request for its idempotency key: the endpoint and every
    /// parameter, in an order that does not depend on how the client sent them.
    pub fn fingerprint(&self, endpoint: &str) -> String {
        let mut pairs = self.0.clone();
        pairs.sort();
        let encoded = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        format!("{endpoint}?{encoded}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(body: &str) -> Params {
        Params::parse(body.as_bytes()).expect("a valid form")
    }

    #[test]
    fn the_fingerprint_ignores_the_order_parameters_were_sent_in() {
        assert_eq!(
            params("amount=5&currency=eur").fingerprint("POST /v1/refunds"),
            params("currency=eur&amount=5").fingerprint("POST /v1/refunds")
        );
        assert_ne!(
            params("amount=5&currency=eur").fingerprint("POST /v1/refunds"),
            params("amount=6&currency=eur").fingerprint("POST /v1/refunds")
        );
    }

    #[test]
    fn metadata_is_read_from_bracketed_names() {
        let metadata =
            params("metadata%5Border_id%5D=o-1&payment_method_types%5B%5D=card").metadata();
        assert_eq!(metadata.get("order_id").map(String::as_str), Some("o-1"));
        assert_eq!(metadata.len(), 1);
    }

    #[test]
    fn an_amount_is_a_whole_number_of_at_least_one() {
        assert_eq!(params("amount=250").amount("amount").ok(), Some(Some(250)));
        assert_eq!(params("").amount("amount").ok(), Some(None));
        for invalid in ["amount=0", "amount=-3", "amount=2.5", "amount=ten"] {
            assert!(params(invalid).amount("amount").is_err(), "{invalid}");
        }
    }
}
