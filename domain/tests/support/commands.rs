//! Builders for valid commands. Each panics with a message if the test itself passes an
//! invalid value: that is a mistake in the test, not a rule being checked.
//!
//! The standard order is 2 × `BOOK-1` at 12.50 EUR and 1 × `PEN-7` at 5.00 EUR:
//! [`TOTAL`] = 3000 cents.

use domain::{
    CancelOrder, CapturePayment, Carrier, Command, Currency, CustomerEmail, CustomerId, LineItem,
    OrderId, PaymentId, PaymentInstruction, PaymentMethod, PaymentMethodId, PlaceOrder,
    PositiveAmount, ProviderReference, Reason, RecordPaymentFailure, RefundId, RefundPayment,
    SalesChannel, ShipOrder, TrackingNumber, ValidationError,
};

/// The standard order's total, in EUR cents.
pub const TOTAL: i64 = 3000;

/// The standard order's items: `(sku, quantity, unit price in cents)`.
pub const STANDARD_ITEMS: &[(&str, i64, i64)] = &[("BOOK-1", 2, 1250), ("PEN-7", 1, 500)];

pub const ORDER_ID: &str = "0199a0a0-0000-7000-8000-000000000001";
pub const CUSTOMER_ID: &str = "cus_ada";
pub const CUSTOMER_EMAIL: &str = "ada@example.com";
pub const SALES_CHANNEL: &str = "web";
pub const METHOD: &str = "card";
pub const FAILURE_REASON: &str = "card declined";
pub const REFUND_REASON: &str = "arrived damaged";
pub const CANCEL_REASON: &str = "customer changed their mind";
pub const CARRIER: &str = "DHL";
pub const TRACKING_NUMBER: &str = "JD014600006";

pub fn eur() -> Currency {
    Currency::parse("EUR").expect("EUR is an ISO 4217 code")
}

pub fn order_id() -> OrderId {
    OrderId::parse(ORDER_ID).expect("ORDER_ID is a UUID")
}

pub fn customer_id() -> CustomerId {
    CustomerId::parse(CUSTOMER_ID).expect("CUSTOMER_ID is a valid id")
}

pub fn customer_email() -> CustomerEmail {
    CustomerEmail::parse(CUSTOMER_EMAIL).expect("CUSTOMER_EMAIL is a valid address")
}

pub fn sales_channel() -> SalesChannel {
    SalesChannel::parse(SALES_CHANNEL).expect("SALES_CHANNEL is a valid sales channel")
}

pub fn payment_id(raw: &str) -> PaymentId {
    PaymentId::parse(raw).unwrap_or_else(|error| panic!("{raw:?} is not a payment id: {error}"))
}

pub fn refund_id(raw: &str) -> RefundId {
    RefundId::parse(raw).unwrap_or_else(|error| panic!("{raw:?} is not a refund id: {error}"))
}

pub fn method() -> PaymentMethod {
    PaymentMethod::parse(METHOD).expect("METHOD is a valid payment method")
}

pub fn reason(raw: &str) -> Reason {
    Reason::parse(raw).unwrap_or_else(|error| panic!("{raw:?} is not a reason: {error}"))
}

pub fn carrier() -> Carrier {
    Carrier::parse(CARRIER).expect("CARRIER is a valid carrier")
}

pub fn tracking_number() -> TrackingNumber {
    TrackingNumber::parse(TRACKING_NUMBER).expect("TRACKING_NUMBER is a valid tracking number")
}

/// Parses `(sku, quantity, unit price in cents)` into EUR line items.
pub fn line_items(items: &[(&str, i64, i64)]) -> Vec<LineItem> {
    items
        .iter()
        .map(|&(sku, quantity, price)| {
            LineItem::parse(sku, quantity, price, eur())
                .unwrap_or_else(|error| panic!("({sku}, {quantity}, {price}) is invalid: {error}"))
        })
        .collect()
}

/// `count` distinct items `SKU-0`, `SKU-1`, … each of `quantity` × `unit_price_minor`.
pub fn numbered_items(count: usize, quantity: i64, unit_price_minor: i64) -> Vec<LineItem> {
    let skus: Vec<String> = (0..count).map(|n| format!("SKU-{n}")).collect();
    let items: Vec<(&str, i64, i64)> =
        skus.iter().map(|sku| (sku.as_str(), quantity, unit_price_minor)).collect();
    line_items(&items)
}

/// Builds a `PlaceOrder` for the standard customer, or says why it is invalid.
pub fn try_place_order(items: Vec<LineItem>) -> Result<PlaceOrder, ValidationError> {
    PlaceOrder::new(order_id(), customer_id(), customer_email(), eur(), items, sales_channel())
}

/// Places the standard order ([`STANDARD_ITEMS`], [`TOTAL`]).
pub fn place_order() -> Command {
    place_order_with(STANDARD_ITEMS)
}

/// Places an order of `(sku, quantity, unit price in cents)` items.
pub fn place_order_with(items: &[(&str, i64, i64)]) -> Command {
    Command::PlaceOrder(try_place_order(line_items(items)).expect("a valid order"))
}

/// Places an order of `count` distinct items, one of each, at 1.00 EUR.
pub fn place_order_of(count: usize) -> Command {
    Command::PlaceOrder(try_place_order(numbered_items(count, 1, 100)).expect("a valid order"))
}

pub fn amount(amount_minor: i64) -> PositiveAmount {
    PositiveAmount::parse("amount_minor", amount_minor)
        .unwrap_or_else(|error| panic!("{amount_minor} is not a positive amount: {error}"))
}

pub fn capture(payment: &str, amount_minor: i64) -> Command {
    Command::CapturePayment(CapturePayment::new(
        payment_id(payment),
        amount(amount_minor),
        method(),
    ))
}

pub fn fail(payment: &str, amount_minor: i64) -> Command {
    Command::RecordPaymentFailure(RecordPaymentFailure::new(
        payment_id(payment),
        amount(amount_minor),
        reason(FAILURE_REASON),
    ))
}

pub fn refund(refund: &str, payment: &str, amount_minor: i64) -> Command {
    Command::RefundPayment(RefundPayment::new(
        refund_id(refund),
        payment_id(payment),
        amount(amount_minor),
        reason(REFUND_REASON),
    ))
}

pub fn cancel() -> Command {
    Command::CancelOrder(CancelOrder::new(reason(CANCEL_REASON)))
}

/// Cancels, asking the payment service to refund what was captured first.
pub fn cancel_with_refund() -> Command {
    Command::CancelOrder(CancelOrder::new(reason(CANCEL_REASON)).with_refund())
}

pub const PROVIDER_REFERENCE: &str = "pi_3PqT1x2eZvKYlo2C";
pub const PAYMENT_METHOD_ID: &str = "pm_card_visa";

pub fn provider_reference() -> ProviderReference {
    ProviderReference::parse(PROVIDER_REFERENCE).expect("a valid provider reference")
}

/// A capture the payment service recorded: it names the provider's charge.
pub fn capture_via_provider(payment: &str, amount_minor: i64) -> Command {
    Command::CapturePayment(
        CapturePayment::new(payment_id(payment), amount(amount_minor), method())
            .with_provider_reference(provider_reference()),
    )
}

/// The standard order, to be charged by the payment service.
pub fn place_order_to_charge() -> Command {
    let place = try_place_order(line_items(STANDARD_ITEMS))
        .and_then(|place| {
            place.with_payment(PaymentInstruction {
                payment_method: PaymentMethodId::parse(PAYMENT_METHOD_ID)?,
            })
        })
        .expect("a valid order to charge");
    Command::PlaceOrder(place)
}

pub fn ship() -> Command {
    Command::ShipOrder(ShipOrder::new(carrier(), tracking_number()))
}
