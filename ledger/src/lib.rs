//! The composition root: it builds the `ledger` binary from the other crates.
//!
//! - [`Settings`] (typed) and [`config`] (flags and environment variables into settings).
//! - [`Application`]: connect, migrate, start the roles this process runs, serve HTTP,
//!   shut down gracefully. `main` and the tests build it the same way.
//! - [`roles`]: the relay, the projection consumers, the dispatcher and the payment
//!   service, run under a [`supervisor`] that
//!   restarts a task that ends unexpectedly and tells `/readyz`.
//! - [`cli`]: the subcommands (`serve`, `migrate`, `relay status`, `projections …`,
//!   `openapi`, `bench`); [`telemetry`] and [`shutdown`]: logs and signals.

mod application;
mod bus_args;
pub mod bus_choice;
pub mod cli;
pub mod config;
mod delivery_args;
mod idempotency_args;
pub mod payment_args;
mod rebuild_cli;
mod republish_cli;
mod roles;
mod settings;
mod shutdown;
mod supervisor;
mod telemetry;

pub use application::Application;
pub use idempotency_args::IdempotencySettings;
pub use settings::*;
