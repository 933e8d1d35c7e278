//! End-to-end specifications of the ledger, against a real PostgreSQL.
//! Each test starts the real application on a random port with its own database.

mod append_only;
mod architecture;
mod as_of;
mod as_of_read_models;
mod auth;
mod bad_input;
mod concurrency;
mod faults;
mod fuzz;
mod group_commit;
mod idempotency;
mod lifecycle;
mod logs;
mod operations;
mod projections;
mod rebuild;
mod relay;
mod snapshots;
mod store;
mod versions;
