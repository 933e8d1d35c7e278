//! The payment service: a process manager (saga) that charges orders placed with a payment
//! instruction through the payment provider, records each outcome through the command
//! layer, retries soft declines, and compensates when payment fails for good (refunds
//! what was captured, cancels the order with reason `payment_failed`). It also carries out
//! cancellations with refund that clients ask for.
//!
//! - [`process`]: the state of one order's process and its transitions (pure).
//! - [`policy`]: when to try again.
//! - [`handler`]: the inbox: order events from the bus start and redirect processes.
//! - [`catch_up`]: the same from the store, for what the bus did not deliver.
//! - [`worker`]: claims due processes and takes their steps (provider calls, commands).
//! - [`store`]: the state in PostgreSQL, with every revision for point-in-time reads.
//! - [`provider`]: what the service needs of a payment provider (the Stripe adapter is in
//!   `payment-provider`).
//!
//! `docs/payment-service.md` has the design and the argument that nothing is charged twice.

pub mod catch_up;
pub mod error;
pub mod handler;
mod issue;
pub mod policy;
pub mod process;
pub mod provider;
pub mod settings;
pub mod status;
pub mod store;
pub mod worker;

pub use catch_up::CatchUp;
pub use error::ServiceError;
pub use handler::{PaymentHandler, UndeliveredAt, CONSUMER};
pub use issue::ACTOR;
pub use policy::RetryPolicy;
pub use process::{PaymentProcess, Step};
pub use settings::ServiceSettings;
pub use status::ServiceStatus;
pub use worker::Worker;
