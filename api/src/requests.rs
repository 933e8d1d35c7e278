//! Command request bodies as clients send them, and their parsing into domain commands.
//!
//! The raw shapes accept only the documented fields (unknown ones are refused, so a typo
//! is not silently ignored); parsing collects every invalid field at once, so a client
//! can fix a form in one round trip.

use serde::Deserialize;
use uuid::Uuid;

use domain::{
    CancelOrder, CapturePayment, Carrier, Command, Currency, CustomerEmail, CustomerId, LineItem,
    OrderId, PaymentId, PaymentInstruction, PaymentMethod, PaymentMethodId, PlaceOrder,
    PositiveAmount, ProviderReference, Reason, RecordPaymentFailure, RefundId, RefundPayment,
    SalesChannel, ShipOrder, TrackingNumber, ValidationError,
};

use crate::error::ApiError;

/// A request body for a command on an existing order.
pub trait IntoCommand: serde::de::DeserializeOwned + Send + 'static {
    fn into_command(self) -> Result<Command, ApiError>;
}

macro_rules! into_command {
    ($($request:ty),*) => {
        $(impl IntoCommand for $request {
            fn into_command(self) -> Result<Command, ApiError> {
                self.parse()
            }
        })*
    };
}

into_command!(
    CapturePaymentRequest,
    RecordPaymentFailureRequest,
    RefundPaymentRequest,
    CancelOrderRequest,
    ShipOrderRequest
);

/// An integer as JSON Schema counts them: `683` or `683.0` (a number with no fraction),
/// never `683.5`.
fn integral<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    number
        .as_i64()
        .or_else(|| {
            number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("{number} is not an integer")))
}

/// Collects validation errors across fields.
#[derive(Default)]
struct Errors(Vec<ValidationError>);

impl Errors {
    fn check<T>(&mut self, result: Result<T, ValidationError>) -> Option<T> {
        result.map_err(|error| self.0.push(error)).ok()
    }

    fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ApiError> {
        match (self.0.is_empty(), build()) {
            (true, Some(value)) => Ok(value),
            _ => Err(ApiError::Validation(self.0)),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    pub order_id: Option<Uuid>,
    #[schema(schema_with = crate::shapes::customer_id)]
    pub customer_id: String,
    #[schema(schema_with = crate::shapes::customer_email)]
    pub customer_email: String,
    #[schema(schema_with = crate::shapes::currency)]
    pub currency: String,
    #[schema(schema_with = crate::shapes::items)]
    pub items: Vec<ItemRequest>,
    /// Where the order came from: 1–32 of `a-z`, `0-9`, `_`, `-`. Default `api`.
    #[schema(schema_with = crate::shapes::sales_channel)]
    pub sales_channel: Option<String>,
    /// Have the payment service charge the order (when it runs): the payment provider's
    /// payment method id. Not allowed on an order whose total is zero.
    pub payment: Option<PaymentInstructionRequest>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentInstructionRequest {
    /// The provider's payment method id (`pm_…`, e.g. Stripe's `pm_card_visa` in test
    /// mode). Never card details.
    #[schema(schema_with = crate::shapes::payment_method_id)]
    pub payment_method: String,
}

/// The sales channel of an order placed through this API without naming one.
pub const DEFAULT_SALES_CHANNEL: &str = "api";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    #[schema(schema_with = crate::shapes::sku)]
    pub sku: String,
    #[schema(schema_with = crate::shapes::quantity)]
    #[serde(deserialize_with = "integral")]
    pub quantity: i64,
    #[schema(schema_with = crate::shapes::unit_price_minor)]
    #[serde(deserialize_with = "integral")]
    pub unit_price_minor: i64,
}

impl PlaceOrderRequest {
    /// `new_id` is used when the client did not choose the order id.
    pub fn parse(self, new_id: impl FnOnce() -> Uuid) -> Result<Command, ApiError> {
        let mut errors = Errors::default();
        let order_id = OrderId::from_uuid(self.order_id.unwrap_or_else(new_id));
        let customer_id = errors.check(CustomerId::parse(&self.customer_id));
        let customer_email = errors.check(CustomerEmail::parse(&self.customer_email));
        let currency = errors.check(Currency::parse(&self.currency));
        let sales_channel = errors.check(SalesChannel::parse(
            self.sales_channel.as_deref().unwrap_or(DEFAULT_SALES_CHANNEL),
        ));
        let payment = match &self.payment {
            Some(payment) => errors
                .check(PaymentMethodId::parse(&payment.payment_method))
                .map(|payment_method| Some(PaymentInstruction { payment_method })),
            None => Some(None),
        };
        let items: Vec<Option<LineItem>> = match currency {
            Some(currency) => self
                .items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    errors.check(
                        LineItem::parse(&item.sku, item.quantity, item.unit_price_minor, currency)
                            .map_err(|e| e.within(&format!("items[{index}]"))),
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        let complete = errors.0.is_empty();
        let place = match (customer_id, customer_email, currency, sales_channel, payment) {
            (
                Some(customer_id),
                Some(customer_email),
                Some(currency),
                Some(sales_channel),
                Some(payment),
            ) if complete => errors.check(
                PlaceOrder::new(
                    order_id,
                    customer_id,
                    customer_email,
                    currency,
                    items.into_iter().flatten().collect(),
                    sales_channel,
                )
                .and_then(|place| match payment {
                    Some(payment) => place.with_payment(payment),
                    None => Ok(place),
                }),
            ),
            _ => None,
        };
        errors.finish(|| place.map(Command::PlaceOrder))
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapturePaymentRequest {
    #[schema(schema_with = crate::shapes::payment_id)]
    pub payment_id: String,
    #[schema(schema_with = crate::shapes::amount_minor)]
    #[serde(deserialize_with = "integral")]
    pub amount_minor: i64,
    #[schema(schema_with = crate::shapes::method)]
    pub method: String,
    /// The payment provider's id of it (`pi_…`, `re_…`), if it went through one.
    #[schema(schema_with = crate::shapes::provider_reference)]
    pub provider_reference: Option<String>,
}

impl CapturePaymentRequest {
    pub fn parse(self) -> Result<Command, ApiError> {
        let mut errors = Errors::default();
        let payment_id = errors.check(PaymentId::parse(&self.payment_id));
        let amount = errors.check(PositiveAmount::parse("amount_minor", self.amount_minor));
        let method = errors.check(PaymentMethod::parse(&self.method));
        let reference = errors.check(provider_reference(self.provider_reference.as_deref()));
        errors.finish(|| {
            let capture = CapturePayment::new(payment_id?, amount?, method?);
            Some(Command::CapturePayment(match reference? {
                Some(reference) => capture.with_provider_reference(reference),
                None => capture,
            }))
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordPaymentFailureRequest {
    #[schema(schema_with = crate::shapes::payment_id)]
    pub payment_id: String,
    #[schema(schema_with = crate::shapes::amount_minor)]
    #[serde(deserialize_with = "integral")]
    pub amount_minor: i64,
    #[schema(schema_with = crate::shapes::reason)]
    pub reason: String,
    /// The payment provider's id of it (`pi_…`, `re_…`), if it went through one.
    #[schema(schema_with = crate::shapes::provider_reference)]
    pub provider_reference: Option<String>,
}

impl RecordPaymentFailureRequest {
    pub fn parse(self) -> Result<Command, ApiError> {
        let mut errors = Errors::default();
        let payment_id = errors.check(PaymentId::parse(&self.payment_id));
        let amount = errors.check(PositiveAmount::parse("amount_minor", self.amount_minor));
        let reason = errors.check(Reason::parse(&self.reason));
        let reference = errors.check(provider_reference(self.provider_reference.as_deref()));
        errors.finish(|| {
            let failure = RecordPaymentFailure::new(payment_id?, amount?, reason?);
            Some(Command::RecordPaymentFailure(match reference? {
                Some(reference) => failure.with_provider_reference(reference),
                None => failure,
            }))
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundPaymentRequest {
    #[schema(schema_with = crate::shapes::refund_id)]
    pub refund_id: String,
    #[schema(schema_with = crate::shapes::payment_id)]
    pub payment_id: String,
    #[schema(schema_with = crate::shapes::amount_minor)]
    #[serde(deserialize_with = "integral")]
    pub amount_minor: i64,
    #[schema(schema_with = crate::shapes::reason)]
    pub reason: String,
    /// The payment provider's id of it (`pi_…`, `re_…`), if it went through one.
    #[schema(schema_with = crate::shapes::provider_reference)]
    pub provider_reference: Option<String>,
}

impl RefundPaymentRequest {
    pub fn parse(self) -> Result<Command, ApiError> {
        let mut errors = Errors::default();
        let refund_id = errors.check(RefundId::parse(&self.refund_id));
        let payment_id = errors.check(PaymentId::parse(&self.payment_id));
        let amount = errors.check(PositiveAmount::parse("amount_minor", self.amount_minor));
        let reason = errors.check(Reason::parse(&self.reason));
        let reference = errors.check(provider_reference(self.provider_reference.as_deref()));
        errors.finish(|| {
            let refund = RefundPayment::new(refund_id?, payment_id?, amount?, reason?);
            Some(Command::RefundPayment(match reference? {
                Some(reference) => refund.with_provider_reference(reference),
                None => refund,
            }))
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelOrderRequest {
    #[schema(schema_with = crate::shapes::reason)]
    pub reason: String,
    /// Give back what was captured first: the payment service refunds each captured
    /// payment through the provider, then cancels (the order is `cancelling` until then).
    /// Default `false`: an order holding captured money is then refused.
    #[serde(default)]
    pub refund: bool,
}

impl CancelOrderRequest {
    pub fn parse(self) -> Result<Command, ApiError> {
        let cancel = CancelOrder::new(Reason::parse(&self.reason)?);
        Ok(Command::CancelOrder(if self.refund { cancel.with_refund() } else { cancel }))
    }
}

/// An optional provider reference: `Ok(None)` when absent.
fn provider_reference(raw: Option<&str>) -> Result<Option<ProviderReference>, ValidationError> {
    raw.map(ProviderReference::parse).transpose()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipOrderRequest {
    #[schema(schema_with = crate::shapes::carrier)]
    pub carrier: String,
    #[schema(schema_with = crate::shapes::tracking_number)]
    pub tracking_number: String,
}

impl ShipOrderRequest {
    pub fn parse(self) -> Result<Command, ApiError> {
        let mut errors = Errors::default();
        let carrier = errors.check(Carrier::parse(&self.carrier));
        let tracking_number = errors.check(TrackingNumber::parse(&self.tracking_number));
        errors.finish(|| Some(Command::ShipOrder(ShipOrder::new(carrier?, tracking_number?))))
    }
}
