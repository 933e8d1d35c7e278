//! End-to-end specifications of the ledger, against a real PostgreSQL.
//! Each test starts the real application on a random port with its own database.

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

mod append_only;
mod architecture;
mod as_of;
mod as_of_read_models;
mod auth;
mod bad_input;
mod catch_up;
mod concurrency;
mod crash_recovery;
mod dead_letters;
mod delivery;
mod delivery_processes;
mod faults;
mod fuzz;
mod group_commit;
mod horizon;
mod idempotency;
mod lifecycle;
mod logs;
mod operations;
mod payment_crashes;
mod payment_service;
mod projections;
mod rebuild;
mod relay;
mod schema;
mod snapshots;
mod split_roles;
mod store;
mod versions;
