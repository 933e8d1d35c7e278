//! Numbers that a command can only hold within their bounds: a quantity of an item, a
//! unit price, a positive amount of money. Built by `parse` (which names the field when
//! the value is out of range) or not at all, so `decide` never sees a negative capture.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Input limits, in one place so the API and its docs quote the same numbers.
pub struct Limits {
    pub max_items: usize,
    pub max_quantity: u32,
    pub max_unit_price_minor: i64,
    /// Above any real order, far below `i64::MAX`: a typo of ten zeros is refused rather
    /// than recorded.
    pub max_amount_minor: i64,
}

pub const LIMITS: Limits = Limits {
    max_items: 100,
    max_quantity: 10_000,
    max_unit_price_minor: 1_000_000_000,
    max_amount_minor: 1_000_000_000_000_000,
};

/// How many of an item: 1 to [`Limits::max_quantity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    pub fn parse(raw: i64) -> Result<Self, ValidationError> {
        u32::try_from(raw)
            .ok()
            .filter(|q| (1..=LIMITS.max_quantity).contains(q))
            .map(Self)
            .ok_or_else(|| {
                ValidationError::new(
                    "quantity",
                    format!("must be between 1 and {}", LIMITS.max_quantity),
                )
            })
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = ValidationError;
    fn try_from(raw: u32) -> Result<Self, Self::Error> {
        Self::parse(i64::from(raw))
    }
}

impl From<Quantity> for u32 {
    fn from(quantity: Quantity) -> u32 {
        quantity.0
    }
}

/// A price of one item in minor units: 0 (free) to [`Limits::max_unit_price_minor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitPrice(i64);

impl UnitPrice {
    pub fn parse(raw: i64) -> Result<Self, ValidationError> {
        if (0..=LIMITS.max_unit_price_minor).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(ValidationError::new(
                "unit_price_minor",
                format!("must be between 0 and {} minor units", LIMITS.max_unit_price_minor),
            ))
        }
    }

    pub fn minor_units(self) -> i64 {
        self.0
    }
}

/// An amount of money moved by a payment, a failed attempt or a refund, in minor units:
/// 1 to [`Limits::max_amount_minor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PositiveAmount(i64);

impl PositiveAmount {
    /// `field` names the input in the client's terms, for the error.
    pub fn parse(field: &str, raw: i64) -> Result<Self, ValidationError> {
        if (1..=LIMITS.max_amount_minor).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(ValidationError::new(
                field,
                format!("must be between 1 and {} minor units", LIMITS.max_amount_minor),
            ))
        }
    }

    pub fn minor_units(self) -> i64 {
        self.0
    }
}
