//! The one load generator ([`engine`]: closed-loop clients with a [`engine::Workload`]
//! each, idempotency keys and retries, every outcome kept or observed) and the measuring
//! helpers every bench shares ([`measure`], [`stats`], [`baseline`]). The fault specs drive
//! the engine with [`workloads`]; `ledger bench` with order lifecycles, as follows.
//!
//! `ledger bench` loads a *running* ledger, through its real HTTP API. The in-process
//! benches (`cargo bench -p ledger-tests`) measure one part at a time on a
//! fresh database; this measures a deployed ledger as its clients see it, end to end, and
//! puts each figure next to a raw PostgreSQL baseline taken in the same run:
//!
//! 1. **Load** ([`load`]): N clients run order lifecycles ([`orders`]) drawn from a
//!    command mix ([`mix`]), with idempotency keys; outcomes by command and status,
//!    latency histograms per command ([`stats`]), and end-to-end probes ([`probe`]: a
//!    command's 201 → the payments read model showing it). `--rate` paces the load;
//!    `--hold-transactions` holds transactions that cannot append open midway ([`hold`]).
//! 2. **Server counters** ([`scrape`]): `/metrics` before and after gives the relay's
//!    publish rate and each projection's apply rate; then the time until the relay's
//!    backlog and the projections' lag are back to 0.
//! 3. **As-of queries** ([`asof`]) at random cuts inside the load.
//! 4. **Rebuild** ([`rebuild`], with an admin token): replay rate of the payments projection.
//! 5. **Baselines** ([`baseline`], with `--database-url`): pgbench single-row inserts at the
//!    same client count, and a raw ordered read of the events.
//! 6. **The ledger process** ([`process`], when it runs here): peak RSS and CPU time.
//!
//! Output: a progress bar, a table ([`report`]), `--json` with every figure, and `--svg`
//! with latency percentiles per second ([`svg`]). docs/performance.md explains the method.
//! Every phase that cannot run says why ("skipped: …") instead of failing the run.

mod args;
pub mod asof;
pub mod baseline;
pub mod client;
pub mod engine;
pub mod hold;
mod interrupt;
pub mod load;
pub mod measure;
pub mod mix;
pub mod orders;
pub mod outcome;
pub mod probe;
pub mod process;
pub mod rebuild;
pub mod report;
mod run;
pub mod scrape;
pub mod stats;
pub mod svg;
pub mod workloads;

pub use args::{parse_duration, BenchArgs};
pub use run::run;
