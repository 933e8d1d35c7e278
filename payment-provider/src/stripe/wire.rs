//! The JSON Stripe answers, reduced to the fields the adapter reads.
//!
//! Every other field is ignored, so Stripe adding fields never breaks the adapter; a
//! status it adds later deserialises as `Unrecognised` rather than failing, and is then
//! treated as an unknown outcome (see `answer.rs`).

use serde::Deserialize;

/// A PaymentIntent (`/v1/payment_intents`).
#[derive(Debug, Deserialize)]
pub(super) struct PaymentIntent {
    pub id: String,
    pub status: IntentStatus,
    #[serde(default)]
    pub latest_charge: Option<Expandable>,
    #[serde(default)]
    pub last_payment_error: Option<ApiError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum IntentStatus {
    Succeeded,
    Processing,
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    RequiresCapture,
    Canceled,
    #[serde(other)]
    Unrecognised,
}

impl IntentStatus {
    /// Stripe's own name, used as the decline code of an intent that ended without an
    /// error: it tells the reader which step the charge stopped at.
    pub fn code(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Processing => "processing",
            Self::RequiresPaymentMethod => "requires_payment_method",
            Self::RequiresConfirmation => "requires_confirmation",
            Self::RequiresAction => "requires_action",
            Self::RequiresCapture => "requires_capture",
            Self::Canceled => "canceled",
            Self::Unrecognised => "unrecognised",
        }
    }
}

/// A Refund (`/v1/refunds`).
#[derive(Debug, Deserialize)]
pub(super) struct Refund {
    pub id: String,
    pub status: RefundStatus,
    #[serde(default)]
    pub failure_reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RefundStatus {
    Succeeded,
    Pending,
    RequiresAction,
    Failed,
    Canceled,
    #[serde(other)]
    Unrecognised,
}

impl RefundStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Pending => "pending",
            Self::RequiresAction => "requires_action",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Unrecognised => "unrecognised",
        }
    }
}

/// Stripe's error envelope: `{"error": {...}}`, whatever the status.
#[derive(Debug, Deserialize)]
pub(super) struct ErrorEnvelope {
    pub error: ApiError,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ApiError {
    /// `card_error`, `invalid_request_error`, `idempotency_error`, `api_error`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
    /// On a card error, the intent the attempt created (always expanded there).
    #[serde(default)]
    pub payment_intent: Option<Expandable>,
}

impl ApiError {
    /// `code` when Stripe gave one, else the error's type: the most specific name there is.
    pub fn code_or_kind(&self) -> String {
        self.code.clone().unwrap_or_else(|| self.kind.clone())
    }

    pub fn message(&self) -> String {
        self.message.clone().unwrap_or_default()
    }
}

/// A reference Stripe may answer as an id or, when expanded, as the object itself.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    pub fn id(&self) -> &str {
        match self {
            Self::Id(id) | Self::Object { id } => id,
        }
    }
}
