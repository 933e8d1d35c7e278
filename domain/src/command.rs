//! Commands: what a client asks the ledger to do, imperative, already parsed.
//!
//! A command can only be constructed from valid values, so [`crate::decide`] checks business
//! rules only. The limits below are part of the public contract (the API documents them).

use crate::{
    Carrier, Currency, CustomerEmail, CustomerId, Money, OrderId, PaymentId, PaymentMethod, Reason,
    RefundId, SalesChannel, Sku, TrackingNumber, ValidationError,
};

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    PlaceOrder(PlaceOrder),
    CapturePayment(CapturePayment),
    RecordPaymentFailure(RecordPaymentFailure),
    RefundPayment(RefundPayment),
    CancelOrder(CancelOrder),
    ShipOrder(ShipOrder),
}

impl Command {
    /// The command's name in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PlaceOrder(_) => "place_order",
            Self::CapturePayment(_) => "capture_payment",
            Self::RecordPaymentFailure(_) => "record_payment_failure",
            Self::RefundPayment(_) => "refund_payment",
            Self::CancelOrder(_) => "cancel_order",
            Self::ShipOrder(_) => "ship_order",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineItem {
    pub sku: Sku,
    pub quantity: u32,
    pub unit_price: Money,
}

impl LineItem {
    pub fn parse(
        sku: &str,
        quantity: i64,
        unit_price_minor: i64,
        currency: Currency,
    ) -> Result<Self, ValidationError> {
        let sku = Sku::parse(sku)?;
        let quantity = u32::try_from(quantity)
            .ok()
            .filter(|q| (1..=LIMITS.max_quantity).contains(q))
            .ok_or_else(|| {
                ValidationError::new(
                    "quantity",
                    format!("must be between 1 and {}", LIMITS.max_quantity),
                )
            })?;
        if !(0..=LIMITS.max_unit_price_minor).contains(&unit_price_minor) {
            return Err(ValidationError::new(
                "unit_price_minor",
                format!("must be between 0 and {} minor units", LIMITS.max_unit_price_minor),
            ));
        }
        Ok(Self { sku, quantity, unit_price: Money::new(unit_price_minor, currency) })
    }

    /// `quantity × unit price`, `None` on overflow.
    pub fn subtotal_minor(&self) -> Option<i64> {
        self.unit_price.amount_minor.checked_mul(i64::from(self.quantity))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceOrder {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub customer_email: CustomerEmail,
    pub currency: Currency,
    pub items: Vec<LineItem>,
    /// The order total, computed once with checked arithmetic when the command is built.
    pub total: Money,
    /// Where the order came from; recorded, not used by any rule.
    pub sales_channel: SalesChannel,
}

impl PlaceOrder {
    pub fn new(
        order_id: OrderId,
        customer_id: CustomerId,
        customer_email: CustomerEmail,
        currency: Currency,
        items: Vec<LineItem>,
        sales_channel: SalesChannel,
    ) -> Result<Self, ValidationError> {
        if items.is_empty() || items.len() > LIMITS.max_items {
            return Err(ValidationError::new(
                "items",
                format!("must hold between 1 and {} items", LIMITS.max_items),
            ));
        }
        for (index, item) in items.iter().enumerate() {
            // The total adds minor units: an item in another currency would be counted as
            // if it were in the order's.
            if item.unit_price.currency != currency {
                return Err(ValidationError::new(
                    format!("items[{index}].unit_price"),
                    format!("must be in the order's currency {currency}"),
                ));
            }
            if items[..index].iter().any(|earlier| earlier.sku == item.sku) {
                return Err(ValidationError::new(
                    format!("items[{index}].sku"),
                    "appears more than once; combine the quantities into one item",
                ));
            }
        }
        let total_minor = items
            .iter()
            .try_fold(0i64, |total, item| item.subtotal_minor()?.checked_add(total))
            .ok_or_else(|| ValidationError::new("items", "the order total overflows"))?;
        Ok(Self {
            order_id,
            customer_id,
            customer_email,
            currency,
            items,
            total: Money::new(total_minor, currency),
            sales_channel,
        })
    }
}

/// Parses a strictly positive amount within [`LIMITS`].
pub fn positive_amount(field: &str, amount_minor: i64) -> Result<i64, ValidationError> {
    if (1..=LIMITS.max_amount_minor).contains(&amount_minor) {
        Ok(amount_minor)
    } else {
        Err(ValidationError::new(
            field,
            format!("must be between 1 and {} minor units", LIMITS.max_amount_minor),
        ))
    }
}

/// Money received. The amount is in the order's currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturePayment {
    pub payment_id: PaymentId,
    pub amount_minor: i64,
    pub method: PaymentMethod,
}

impl CapturePayment {
    pub fn new(
        payment_id: PaymentId,
        amount_minor: i64,
        method: PaymentMethod,
    ) -> Result<Self, ValidationError> {
        let amount_minor = positive_amount("amount_minor", amount_minor)?;
        Ok(Self { payment_id, amount_minor, method })
    }
}

/// A declined payment attempt, recorded so support and the customer can see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordPaymentFailure {
    pub payment_id: PaymentId,
    pub amount_minor: i64,
    pub reason: Reason,
}

impl RecordPaymentFailure {
    pub fn new(
        payment_id: PaymentId,
        amount_minor: i64,
        reason: Reason,
    ) -> Result<Self, ValidationError> {
        let amount_minor = positive_amount("amount_minor", amount_minor)?;
        Ok(Self { payment_id, amount_minor, reason })
    }
}

/// Money returned against one captured payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundPayment {
    pub refund_id: RefundId,
    pub payment_id: PaymentId,
    pub amount_minor: i64,
    pub reason: Reason,
}

impl RefundPayment {
    pub fn new(
        refund_id: RefundId,
        payment_id: PaymentId,
        amount_minor: i64,
        reason: Reason,
    ) -> Result<Self, ValidationError> {
        let amount_minor = positive_amount("amount_minor", amount_minor)?;
        Ok(Self { refund_id, payment_id, amount_minor, reason })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelOrder {
    pub reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipOrder {
    pub carrier: Carrier,
    pub tracking_number: TrackingNumber,
}
