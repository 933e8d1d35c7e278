//! The ledger's HTTP API and its application wiring.
//!
//! - [`startup`]: `Application::build(settings)` → bound address + `run(shutdown)`.
//! - [`routes`]: the axum router, one module per resource.
//! - [`commands`]: executing a command (load → decide → append) in one transaction;
//!   [`group_commit`]: many concurrent commands in one transaction.
//! - [`requests`] / [`views`]: what clients send and what they get back.
//! - [`auth`] / [`limits`]: bearer tokens and roles, per-token concurrency, time limit.
//! - [`metrics`] / [`openapi`]: `/metrics` and `/openapi.json` + `/docs`.
//! - [`error`]: every failure as `application/problem+json` with a stable code.
//! - [`extract`] / [`correlation`]: checked extraction of bodies, paths and headers.
//! - [`cli`]: the `ledger` command line.
//! - [`bench`]: `ledger bench`, a load generator for a running ledger, with baselines.
//! - [`config`] / [`telemetry`] / [`shutdown`]: settings, logs, signals.

pub mod aggregate;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod config;
pub mod correlation;
pub mod error;
pub mod extract;
pub mod group_commit;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod query;
mod rebuild_cli;
pub mod requests;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod views;

pub use startup::Application;
