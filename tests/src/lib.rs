//! The end-to-end test harness.
//!
//! - [`TestDatabase`]: a fresh database per test, copied from a template database that is
//!   migrated once per migration set (named after its fingerprint), dropped when the
//!   guard drops. Safe across parallel test processes.
//! - [`TestApp`]: the real application (`Application::build`, the same path as `main`)
//!   on a random port against its own database, with one helper per endpoint.
//! - [`poll_until`]: waiting on a condition with a deadline, never a bare sleep.

mod app;
mod database;
mod poll;

pub use app::{expect_json, expect_status, TestApp, ORDER_TOTAL_MINOR};
pub use database::TestDatabase;
pub use poll::poll_until;
