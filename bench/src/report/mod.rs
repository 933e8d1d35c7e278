//! Everything one run measured: the machine-readable report (`--json`) and the table
//! printed at the end.

mod print;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::asof::AsOfReport;
use super::baseline::{Pgbench, RawProduce, RawRead};
use super::mix::{Kind, Mix};
use super::probe::EndToEndReport;
use super::process::{CpuBreakdown, Memory};
use super::rebuild::RebuildReport;
use super::stats::{SecondBucket, Summary};

/// A figure, or why the run has none (`{"skipped": "why"}` in the JSON).
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Figure<T> {
    Measured(T),
    Skipped { skipped: String },
}

impl<T> Figure<T> {
    pub fn skipped(why: impl Into<String>) -> Figure<T> {
        Figure::Skipped { skipped: why.into() }
    }

    pub fn from_result(result: anyhow::Result<T>) -> Figure<T> {
        match result {
            Ok(value) => Figure::Measured(value),
            Err(error) => Figure::skipped(format!("{error:#}")),
        }
    }

    pub fn value(&self) -> Option<&T> {
        match self {
            Figure::Measured(value) => Some(value),
            Figure::Skipped { .. } => None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub url: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub settings: Settings,
    pub load: Load,
    /// p50/p95/p99 of the commands answered in each second of the load.
    pub timeline: Vec<SecondBucket>,
    pub end_to_end: Figure<EndToEndReport>,
    pub relay: Figure<Rate>,
    pub projections: Figure<BTreeMap<String, Rate>>,
    /// Seconds after the load until the relay's backlog and every projection's lag were 0.
    pub catch_up_seconds: Figure<f64>,
    /// The ledger's own mean command latency over the load (from its histogram).
    pub server_command_mean_ms: Figure<f64>,
    pub as_of: Figure<AsOfReport>,
    pub rebuild: Figure<RebuildReport>,
    pub ledger_process: Figure<LedgerProcess>,
    /// Where the machine's cores went during the load.
    pub cpu: Figure<CpuBreakdown>,
    pub baselines: Baselines,
    pub ratios: Ratios,
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub clients: u32,
    pub duration_seconds: Option<f64>,
    pub count: Option<u64>,
    pub mix: Mix,
    pub invalid_percent: u32,
    pub e2e_sample_one_in: u32,
    pub e2e_probes: usize,
    pub as_of_queries: u32,
    pub seed: u64,
}

#[derive(Debug, Serialize)]
pub struct Load {
    pub elapsed_seconds: f64,
    pub interrupted: bool,
    /// Every HTTP attempt, retries included.
    pub requests: u64,
    /// Answered 201 (including replays of an earlier attempt).
    pub accepted: u64,
    pub accepted_per_second: f64,
    pub requests_per_second: f64,
    /// Every answered request, all commands.
    pub latency: Summary,
    pub commands: Vec<CommandReport>,
    pub first_transport_error: Option<String>,
    /// CPU seconds per second of load used by `ledger bench` itself: near the machine's
    /// core count, the generator rather than the ledger may be the limit.
    pub generator_cpu_cores: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct CommandReport {
    pub command: Kind,
    pub weight: u32,
    pub requests: u64,
    pub accepted: u64,
    pub accepted_per_second: f64,
    pub deliberately_invalid: u64,
    pub fallbacks: u64,
    pub outcomes: BTreeMap<String, u64>,
    /// Every answered request of this command, whatever its status.
    pub latency: Summary,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rate {
    pub events: f64,
    pub per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct LedgerProcess {
    pub pid: u32,
    /// Right after the load: `VmHWM` (peak since the ledger started) and `VmRSS`.
    pub after_load: Option<Memory>,
    /// At the end of the run (after the as-of queries and the rebuild).
    pub at_end: Option<Memory>,
    pub cpu_seconds_during_load: Option<f64>,
    /// CPU seconds per second of load: how many cores the ledger kept busy.
    pub cpu_cores_during_load: Option<f64>,
    pub cpu_ms_per_accepted_command: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Baselines {
    pub pgbench: Figure<Pgbench>,
    pub raw_read: Figure<RawRead>,
    pub raw_produce: Figure<RawProduce>,
}

#[derive(Debug, Default, Serialize)]
pub struct Ratios {
    /// Accepted commands/s ÷ pgbench single-row insert TPS at the same client count.
    pub commands_per_pgbench_tps: Option<f64>,
    /// Rebuild events/s (the ledger's figure) ÷ raw ordered read events/s, for a rebuild
    /// that finished.
    pub rebuild_per_raw_read: Option<f64>,
    /// The relay's events/s during the load ÷ raw produce events/s: how much of the
    /// broker's capacity the relay used (it publishes what the load appends, so this is
    /// headroom, not the relay's own ceiling; the `relay` bench measures that).
    pub relay_per_raw_produce: Option<f64>,
}

impl Ratios {
    pub fn of(
        load: &Load,
        relay: &Figure<Rate>,
        rebuild: &Figure<RebuildReport>,
        baselines: &Baselines,
    ) -> Ratios {
        let divide = |a: f64, b: f64| (b > 0.0).then(|| a / b);
        Ratios {
            commands_per_pgbench_tps: baselines
                .pgbench
                .value()
                .and_then(|pgbench| divide(load.accepted_per_second, pgbench.tps)),
            rebuild_per_raw_read: rebuild
                .value()
                .filter(|rebuild| rebuild.state == "done")
                .zip(baselines.raw_read.value())
                .and_then(|(rebuild, raw)| {
                    divide(rebuild.events_per_second, raw.events_per_second)
                }),
            relay_per_raw_produce: relay
                .value()
                .zip(baselines.raw_produce.value())
                .and_then(|(relay, raw)| divide(relay.per_second, raw.events_per_second)),
        }
    }
}
