//! End-to-end specifications of the ledger, against a real PostgreSQL.
//! Each test starts the real application on a random port with its own database.

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

/// One `#[tokio::test]` per spec and bus: `<file>::kafka::<spec>`, `<file>::nats::<spec>`,
/// `<file>::rabbitmq::<spec>`, each calling `spec(BusKind::…)`.
macro_rules! on_every_bus {
    ($($spec:ident),* $(,)?) => {
        on_bus!(kafka, ledger::bus_choice::BusKind::Kafka, [$($spec),*]);
        on_bus!(nats, ledger::bus_choice::BusKind::Nats, [$($spec),*]);
        on_bus!(rabbitmq, ledger::bus_choice::BusKind::Rabbitmq, [$($spec),*]);
    };
}

macro_rules! on_bus {
    ($module:ident, $kind:expr, [$($spec:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $spec() -> anyhow::Result<()> {
                    super::$spec($kind).await
                }
            )*
        }
    };
}

mod append_only;
mod architecture;
mod as_of;
mod as_of_read_models;
mod auth;
mod bad_input;
mod buses;
mod catch_up;
mod concurrency;
mod console;
mod contract;
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
mod monitoring;
mod operations;
mod payment_crashes;
mod payment_service;
mod projections;
mod rebuild;
mod relay;
mod republish;
mod scale_out;
mod schema;
mod snapshots;
mod split_roles;
mod store;
mod tls;
mod traces;
mod versions;
