//! The ledger's HTTP adapter, and only that: it parses requests into domain commands and
//! queries, calls the command layer and the read models, and answers in JSON or
//! `application/problem+json`.
//!
//! - [`router`]: the axum router (one module per resource under `routes`), with the
//!   layers every request passes: correlation ids, tracing (the W3C trace context of
//!   `trace`), metrics, panic capture, body and time limits, and per group of routes the
//!   access it needs.
//! - [`ApiContext`]: what the handlers share: the command service, the store, and a view
//!   of the roles running in this process ([`Roles`]).
//! - [`Tokens`] and [`Gate`]: bearer tokens, roles and the per-token concurrency limit.
//! - [`metrics::install`]: the process-wide Prometheus recorder behind `/metrics`.
//! - [`openapi_spec`]: the OpenAPI 3.1 document, generated from the same routes.
//!
//! Everything else is internal: requests and views, extractors, the error mapping.

mod auth;
mod context;
mod correlation;
mod error;
mod extract;
mod limits;
pub mod metrics;
mod openapi;
mod params;
mod query;
mod read_model;
mod requests;
mod routes;
mod shapes;
mod trace;
mod views;

pub use auth::{Gate, Tokens, TokensError};
pub use context::{ApiContext, BusInfo, ConsumerView, Roles, TaskHealth, TaskState};
pub use routes::{openapi_json, openapi_spec, router, Admission};
