//! The schemas of request fields, from the rules the domain checks them by (lengths,
//! character classes, ranges, the currency list), so the document states every rule the
//! server enforces and cannot drift from it. Each function is a field's
//! `#[schema(schema_with = …)]`.

use domain::{
    Carrier, Currency, CustomerEmail, CustomerId, PaymentId, PaymentMethod, PaymentMethodId,
    ProviderReference, Reason, RefundId, SalesChannel, Sku, TextRule, TrackingNumber, LIMITS,
};
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, Object, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::openapi::{Array, Ref};

fn text(rule: TextRule) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(rule.min))
        .max_length(Some(rule.max))
        .pattern(Some(rule.pattern()))
        .build()
}

fn integer(minimum: i64, maximum: i64) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(minimum as f64))
        .maximum(Some(maximum as f64))
        .build()
}

macro_rules! text_fields {
    ($($function:ident => $value:ty),* $(,)?) => {
        $(pub(crate) fn $function() -> Object {
            text(<$value>::RULE)
        })*
    };
}

text_fields!(
    customer_id => CustomerId,
    customer_email => CustomerEmail,
    payment_id => PaymentId,
    refund_id => RefundId,
    sku => Sku,
    method => PaymentMethod,
    reason => Reason,
    carrier => Carrier,
    tracking_number => TrackingNumber,
    sales_channel => SalesChannel,
    payment_method_id => PaymentMethodId,
    provider_reference => ProviderReference,
);

pub(crate) fn currency() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(Currency::codes().iter().copied()))
        .examples(["EUR"])
        .build()
}

pub(crate) fn quantity() -> Object {
    integer(1, i64::from(LIMITS.max_quantity))
}

pub(crate) fn unit_price_minor() -> Object {
    integer(0, LIMITS.max_unit_price_minor)
}

pub(crate) fn amount_minor() -> Object {
    integer(1, LIMITS.max_amount_minor)
}

pub(crate) fn items() -> Array {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("ItemRequest"))
        .min_items(Some(1))
        .max_items(Some(LIMITS.max_items))
        .build()
}

/// A customer id where a type is wanted (a path parameter).
pub(crate) struct CustomerIdText;

impl utoipa::PartialSchema for CustomerIdText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        customer_id().into()
    }
}

impl utoipa::ToSchema for CustomerIdText {}
