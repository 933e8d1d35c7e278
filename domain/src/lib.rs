//! The order ledger's domain: what an order is, which commands it accepts and which facts
//! (events) it records.
//!
//! The aggregate is two pure functions, in the style of cqrs-es and esrs:
//!
//! - [`decide`] turns the current [`Order`] and a [`Command`] into the events to record, or
//!   a [`DomainError`] naming the rule that refused it;
//! - [`evolve`] folds one [`Event`] into the state.
//!
//! The state of an order is, by definition, `events.iter().fold(Order::default(), evolve)`.
//! Nothing here does I/O, reads a clock or generates ids: the edges supply those, so the
//! same history always yields the same state and the rules can be tested exhaustively.
//!
//! Values are parsed once at the edge into types that can only hold valid data
//! (`PositiveAmount`, `Quantity`, `Sku`, `CustomerEmail`, …), and commands are built from
//! them through constructors only (their fields are private): past that point the code
//! handles valid data only, and a command of −500 cannot be written down.

mod amount;
mod command;
mod error;
mod event;
mod ids;
mod money;
mod order;
mod text;

pub use amount::{Limits, PositiveAmount, Quantity, UnitPrice, LIMITS};
pub use command::{
    rules_of, CancelOrder, CapturePayment, Command, LineItem, PlaceOrder, RecordPaymentFailure,
    RefundPayment, ShipOrder, COMMAND_NAMES,
};
pub use error::{DomainError, Rule, ValidationError};
pub use event::{
    Event, OrderCancellationRequested, OrderCancelled, OrderFullyPaid, OrderLine, OrderPlaced,
    OrderShipped, PaymentCaptured, PaymentFailed, PaymentInstruction, PaymentRefunded,
};
pub use ids::{CustomerId, OrderId, PaymentId, RefundId};
pub use money::{Currency, Money};
pub use order::{
    decide, evolve, CapturedPayment, Fulfilment, Order, PlacedOrder, ORDER_SHAPE_VERSION,
};
pub use text::{
    Carrier, CustomerEmail, PaymentMethod, PaymentMethodId, ProviderReference, Reason,
    SalesChannel, Sku, TextClass, TextRule, TrackingNumber,
};
