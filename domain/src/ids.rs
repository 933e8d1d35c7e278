//! Identifiers. Order ids are UUIDs chosen by the client or the edge (the domain does not
//! generate ids: that would make `decide` impure). Customer, payment and refund ids come
//! from other systems (a CRM, a payment service provider), so they are opaque bounded
//! strings of visible ASCII rather than UUIDs.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use crate::ValidationError;

/// The id of an order, which is also the id of its event stream.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct OrderId(Uuid);

impl OrderId {
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Uuid::try_parse(raw)
            .map(Self)
            .map_err(|_| ValidationError::new("order_id", "must be a UUID"))
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! external_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// What a value must be.
            pub const RULE: crate::TextRule = crate::TextRule::token(1, 64);

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
            fn from(id: $name) -> String {
                id.0
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

external_id!(
    /// The customer who placed the order, as known to the system that owns customers.
    CustomerId,
    "customer_id"
);
external_id!(
    /// A payment id from the payment service provider (`pi_3Mtw…`).
    PaymentId,
    "payment_id"
);
external_id!(
    /// A refund id from the payment service provider (`re_…`).
    RefundId,
    "refund_id"
);
