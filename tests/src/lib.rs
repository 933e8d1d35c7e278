//! The end-to-end test harness.
//!
//! - [`TestDatabase`]: a fresh database per test, copied from a template database that is
//!   migrated once per migration set (named after its fingerprint), dropped when the
//!   guard drops. Safe across parallel test processes.
//! - [`TestApp`]: the real application (`Application::build`, the same path as `main`)
//!   on a random port against its own database, with one helper per endpoint.
//! - [`TopicReader`]: reads what the relay published, from the beginning of the topic.
//! - [`TestBroker`]: a Tansu broker of the test's own behind a hop the test can cut (an
//!   outage that keeps its data) or restarted empty; other tests share the one at
//!   `KAFKA_BROKERS` with a unique topic prefix each.
//! - [`buses`]: the three buses for specs that run on each, and a reader of any of them;
//!   [`TcpCut`]: a hop to a shared broker that a test cuts (a broker outage).
//! - [`TestRelay`], [`TestConsumer`]: roles of the test's own that it can stop or abort.
//! - [`LedgerProcess`]: the real `ledger` binary as an OS process a test can kill -9, and
//!   [`RoundRobin`], a balancer in front of several of them.
//! - [`TestSmtp`]: a real SMTP server (aiosmtpd, `tests/smtp_sink.py`) of the test's own
//!   that records the mail it accepts; it can refuse mail, or stop and start again.
//! - [`TestReceiver`]: a real HTTP server that records the Standard Webhooks it receives,
//!   checks their signatures, and answers with the statuses the test programs.
//! - [`payments`]: a ledger charging through a payment-provider stand-in of the test's own.
//! - [`browser`]: Debian's headless Chromium through chromedriver, for the console.
//! - [`otlp`]: a real OTLP/HTTP receiver that keeps the spans a ledger exports to it.
//! - [`poll_until`]: waiting on a condition with a deadline, never a bare sleep.
//! - [`certificates`]: a certificate authority of the test's own and the certificates it
//!   signs, for a [`PrivateCluster`] that speaks TLS only.

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

/// The allocator the `ledger` binary uses, so that benches measure what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod app;
pub mod audit;
mod broker;
pub mod browser;
pub mod buses;
pub mod certificates;
mod cut;
mod database;
pub mod history;
pub mod lifecycles;
mod mail;
pub mod otlp;
pub mod payments;
mod poll;
pub mod postgres;
pub mod process;
mod roles;
mod round_robin;
pub mod smtp;
pub mod steady;
mod topic;
pub mod webhook;

pub use app::{
    client_with_token, expect_json, expect_status, TestApp, ADMIN_TOKEN, ORDER_TOTAL_MINOR,
    READ_TOKEN, WRITE_TOKEN,
};
pub use broker::{kafka_brokers, TestBroker};
pub use cut::TcpCut;
pub use database::{server_address, url_via, TestDatabase};
pub use poll::poll_until;
pub use postgres::{PrivateCluster, StopMode};
pub use process::{start_load, start_load_at, LedgerConfig, LedgerProcess};
pub use roles::{test_kafka, TestConsumer, TestRelay};
pub use round_robin::RoundRobin;
pub use smtp::{ReceivedMail, TestSmtp};
pub use topic::{ReceivedMessage, TopicReader};
pub use webhook::{ReceivedHook, TestReceiver};

/// The `field` of every item of the JSON list `json[list]`, as `T` (items without it, or
/// of another type, are skipped): `pluck::<i64>(&history, "events", "stream_version")`.
pub fn pluck<T: serde::de::DeserializeOwned>(
    json: &serde_json::Value,
    list: &str,
    field: &str,
) -> Vec<T> {
    json[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| T::deserialize(&item[field]).ok())
        .collect()
}
