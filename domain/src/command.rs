//! Commands: what a client asks the ledger to do, imperative, already parsed.
//!
//! Every field is private to this crate and every constructor takes values that can only be valid
//! (`PositiveAmount`, `Quantity`, `Sku`, …) or checks what they cannot express alone (an
//! order's items against its currency and each other), so a command that exists is well
//! formed and [`crate::decide`] checks business rules only. The limits are part of the
//! public contract (the API documents them).

use crate::amount::{PositiveAmount, Quantity, UnitPrice, LIMITS};
use crate::{
    Carrier, Currency, CustomerEmail, CustomerId, Money, OrderId, PaymentId, PaymentInstruction,
    PaymentMethod, ProviderReference, Reason, RefundId, SalesChannel, Sku, TrackingNumber,
    ValidationError,
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

    /// The codes of the rules [`crate::decide`] can refuse this command by.
    pub fn rules(&self) -> &'static [&'static str] {
        rules_of(self.name())
    }
}

/// Every command's name, as [`Command::name`] gives it.
pub const COMMAND_NAMES: [&str; 6] = [
    "place_order",
    "capture_payment",
    "record_payment_failure",
    "refund_payment",
    "cancel_order",
    "ship_order",
];

/// The codes of the rules [`crate::decide`] can refuse the command named `command` by
/// (see [`Command::name`]): what the API documents for it. The domain's property tests
/// hold `decide` to this list both ways.
pub fn rules_of(command: &str) -> &'static [&'static str] {
    match command {
        "place_order" => &["order_already_placed"],
        "capture_payment" => &[
            "order_cancelled",
            "order_shipped",
            "payment_already_captured",
            "capture_exceeds_outstanding",
        ],
        "record_payment_failure" => {
            &["order_cancelled", "order_shipped", "payment_already_captured"]
        }
        "refund_payment" => {
            &["refund_already_recorded", "unknown_payment", "refund_exceeds_refundable"]
        }
        "cancel_order" => &[
            "order_cancelled",
            "order_shipped",
            "captured_funds_not_refunded",
            "cancellation_requested",
            "refund_not_possible",
        ],
        "ship_order" => {
            &["order_cancelled", "order_shipped", "not_fully_paid", "cancellation_requested"]
        }
        _ => &[],
    }
}

/// One line of an order: so many of an item at a unit price in the order's currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineItem {
    pub(crate) sku: Sku,
    pub(crate) quantity: Quantity,
    pub(crate) unit_price: Money,
}

impl LineItem {
    pub fn new(sku: Sku, quantity: Quantity, unit_price: UnitPrice, currency: Currency) -> Self {
        Self { sku, quantity, unit_price: Money::new(unit_price.minor_units(), currency) }
    }

    /// Parses raw input, naming the field that is out of range.
    pub fn parse(
        sku: &str,
        quantity: i64,
        unit_price_minor: i64,
        currency: Currency,
    ) -> Result<Self, ValidationError> {
        Ok(Self::new(
            Sku::parse(sku)?,
            Quantity::parse(quantity)?,
            UnitPrice::parse(unit_price_minor)?,
            currency,
        ))
    }

    pub fn sku(&self) -> &Sku {
        &self.sku
    }

    pub fn quantity(&self) -> Quantity {
        self.quantity
    }

    pub fn unit_price(&self) -> Money {
        self.unit_price
    }

    /// `quantity × unit price`, `None` on overflow.
    pub fn subtotal_minor(&self) -> Option<i64> {
        self.unit_price.amount_minor().checked_mul(i64::from(self.quantity.get()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceOrder {
    pub(crate) order_id: OrderId,
    pub(crate) customer_id: CustomerId,
    pub(crate) customer_email: CustomerEmail,
    pub(crate) items: Vec<LineItem>,
    /// The order total, computed once with checked arithmetic when the command is built.
    pub(crate) total: Money,
    /// Where the order came from; recorded, not used by any rule.
    pub(crate) sales_channel: SalesChannel,
    /// How the payment service is to charge it, if it is to.
    pub(crate) payment: Option<PaymentInstruction>,
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
            if item.unit_price.currency() != currency {
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
            items,
            total: Money::new(total_minor, currency),
            sales_channel,
            payment: None,
        })
    }

    /// Asks the payment service to charge the order. Refused for an order with nothing to
    /// pay: it is settled on placement.
    pub fn with_payment(mut self, payment: PaymentInstruction) -> Result<Self, ValidationError> {
        if self.total.amount_minor() == 0 {
            return Err(ValidationError::new(
                "payment",
                "an order whose total is zero has nothing to charge; leave out the payment \
                 instruction",
            ));
        }
        self.payment = Some(payment);
        Ok(self)
    }

    pub fn payment(&self) -> Option<&PaymentInstruction> {
        self.payment.as_ref()
    }

    pub fn order_id(&self) -> OrderId {
        self.order_id
    }

    pub fn customer_id(&self) -> &CustomerId {
        &self.customer_id
    }

    pub fn customer_email(&self) -> &CustomerEmail {
        &self.customer_email
    }

    pub fn currency(&self) -> Currency {
        self.total.currency()
    }

    pub fn items(&self) -> &[LineItem] {
        &self.items
    }

    pub fn total(&self) -> Money {
        self.total
    }

    pub fn sales_channel(&self) -> &SalesChannel {
        &self.sales_channel
    }
}

/// Money received. The amount is in the order's currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturePayment {
    pub(crate) payment_id: PaymentId,
    pub(crate) amount: PositiveAmount,
    pub(crate) method: PaymentMethod,
    pub(crate) provider_reference: Option<ProviderReference>,
}

impl CapturePayment {
    /// Names the payment provider's record of it.
    pub fn with_provider_reference(mut self, reference: ProviderReference) -> Self {
        self.provider_reference = Some(reference);
        self
    }

    pub fn provider_reference(&self) -> Option<&ProviderReference> {
        self.provider_reference.as_ref()
    }

    pub fn new(payment_id: PaymentId, amount: PositiveAmount, method: PaymentMethod) -> Self {
        Self { payment_id, amount, method, provider_reference: None }
    }

    pub fn payment_id(&self) -> &PaymentId {
        &self.payment_id
    }

    pub fn amount(&self) -> PositiveAmount {
        self.amount
    }

    pub fn method(&self) -> &PaymentMethod {
        &self.method
    }
}

/// A declined payment attempt, recorded so support and the customer can see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordPaymentFailure {
    pub(crate) payment_id: PaymentId,
    pub(crate) amount: PositiveAmount,
    pub(crate) reason: Reason,
    pub(crate) provider_reference: Option<ProviderReference>,
}

impl RecordPaymentFailure {
    /// Names the payment provider's record of it.
    pub fn with_provider_reference(mut self, reference: ProviderReference) -> Self {
        self.provider_reference = Some(reference);
        self
    }

    pub fn provider_reference(&self) -> Option<&ProviderReference> {
        self.provider_reference.as_ref()
    }

    pub fn new(payment_id: PaymentId, amount: PositiveAmount, reason: Reason) -> Self {
        Self { payment_id, amount, reason, provider_reference: None }
    }

    pub fn payment_id(&self) -> &PaymentId {
        &self.payment_id
    }

    pub fn amount(&self) -> PositiveAmount {
        self.amount
    }

    pub fn reason(&self) -> &Reason {
        &self.reason
    }
}

/// Money returned against one captured payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundPayment {
    pub(crate) refund_id: RefundId,
    pub(crate) payment_id: PaymentId,
    pub(crate) amount: PositiveAmount,
    pub(crate) reason: Reason,
    pub(crate) provider_reference: Option<ProviderReference>,
}

impl RefundPayment {
    /// Names the payment provider's record of it.
    pub fn with_provider_reference(mut self, reference: ProviderReference) -> Self {
        self.provider_reference = Some(reference);
        self
    }

    pub fn provider_reference(&self) -> Option<&ProviderReference> {
        self.provider_reference.as_ref()
    }

    pub fn new(
        refund_id: RefundId,
        payment_id: PaymentId,
        amount: PositiveAmount,
        reason: Reason,
    ) -> Self {
        Self { refund_id, payment_id, amount, reason, provider_reference: None }
    }

    pub fn refund_id(&self) -> &RefundId {
        &self.refund_id
    }

    pub fn payment_id(&self) -> &PaymentId {
        &self.payment_id
    }

    pub fn amount(&self) -> PositiveAmount {
        self.amount
    }

    pub fn reason(&self) -> &Reason {
        &self.reason
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelOrder {
    pub(crate) reason: Reason,
    /// Give captured money back first, through the payment service.
    pub(crate) refund: bool,
}

impl CancelOrder {
    pub fn new(reason: Reason) -> Self {
        Self { reason, refund: false }
    }

    /// Cancels an order that holds captured money: the payment service refunds it all
    /// through the provider, then cancels.
    pub fn with_refund(mut self) -> Self {
        self.refund = true;
        self
    }

    pub fn refund(&self) -> bool {
        self.refund
    }

    pub fn reason(&self) -> &Reason {
        &self.reason
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipOrder {
    pub(crate) carrier: Carrier,
    pub(crate) tracking_number: TrackingNumber,
}

impl ShipOrder {
    pub fn new(carrier: Carrier, tracking_number: TrackingNumber) -> Self {
        Self { carrier, tracking_number }
    }

    pub fn carrier(&self) -> &Carrier {
        &self.carrier
    }

    pub fn tracking_number(&self) -> &TrackingNumber {
        &self.tracking_number
    }
}
