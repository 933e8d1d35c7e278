//! The report as a table on the terminal.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::asof::QueryReport;
use crate::process::Memory;
use crate::stats::Summary;

use super::*;

fn skipped_text<T>(figure: &Figure<T>) -> Option<String> {
    match figure {
        Figure::Measured(_) => None,
        Figure::Skipped { skipped } => Some(format!("skipped: {skipped}")),
    }
}

fn percentiles(summary: &Summary) -> String {
    format!(
        "p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        summary.p50_ms, summary.p95_ms, summary.p99_ms, summary.max_ms
    )
}

fn outcomes(outcomes: &BTreeMap<String, u64>) -> String {
    outcomes.iter().map(|(outcome, n)| format!("{outcome} ×{n}")).collect::<Vec<_>>().join(", ")
}

fn query_line(name: &str, query: &QueryReport) -> String {
    format!("  {name:<34} {}  ({})", percentiles(&query.latency), outcomes(&query.outcomes))
}

impl Report {
    /// The table printed at the end of a run.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let settings = &self.settings;
        let load = &self.load;
        let _ = writeln!(
            out,
            "\nledger bench → {}: {} clients, {:.1} s{}, mix {}",
            self.url,
            settings.clients,
            load.elapsed_seconds,
            if load.interrupted { " (interrupted)" } else { "" },
            settings.mix
        );
        let _ = writeln!(
            out,
            "\n{:<9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "command",
            "requests",
            "accepted",
            "refused",
            "errors",
            "201/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms"
        );
        let row = |out: &mut String,
                   name: &str,
                   requests,
                   accepted,
                   refused,
                   errors,
                   rate,
                   s: &Summary| {
            let _ = writeln!(
                out,
                "{name:<9} {requests:>8} {accepted:>8} {refused:>8} {errors:>8} {rate:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms
            );
        };
        let split = |outcomes: &BTreeMap<String, u64>| {
            let mut refused = 0;
            let mut errors = 0;
            for (outcome, n) in outcomes {
                match outcome.chars().next() {
                    Some('2') => {}
                    Some('4') if !outcome.starts_with("429") => refused += n,
                    _ => errors += n,
                }
            }
            (refused, errors)
        };
        let (mut all_refused, mut all_errors) = (0, 0);
        for command in &load.commands {
            let (refused, errors) = split(&command.outcomes);
            all_refused += refused;
            all_errors += errors;
            row(
                &mut out,
                command.command.name(),
                command.requests,
                command.accepted,
                refused,
                errors,
                command.accepted_per_second,
                &command.latency,
            );
        }
        row(
            &mut out,
            "all",
            load.requests,
            load.accepted,
            all_refused,
            all_errors,
            load.accepted_per_second,
            &load.latency,
        );
        let _ = writeln!(
            out,
            "\noutcomes (\"refused\" = 4xx other than 429; errors = 429, 5xx, transport):"
        );
        for command in &load.commands {
            let mut extra = String::new();
            if command.deliberately_invalid > 0 {
                let _ = write!(extra, "; {} sent invalid on purpose", command.deliberately_invalid);
            }
            if command.fallbacks > 0 {
                let _ = write!(extra, "; {} placed as no order was ready", command.fallbacks);
            }
            let _ = writeln!(
                out,
                "  {:<8} {}{extra}",
                command.command.name(),
                outcomes(&command.outcomes)
            );
        }
        if let Some(cores) = load.generator_cpu_cores {
            let _ = writeln!(out, "  the load generator itself kept {cores:.2} cores busy");
        }
        if let Some(error) = &load.first_transport_error {
            let _ = writeln!(out, "  first transport error: {error}");
        }

        let _ = writeln!(out);
        match &self.end_to_end {
            Figure::Measured(e2e) => {
                let _ = writeln!(
                    out,
                    "end to end, 201 → payments read model (1 in {}): {} probes, {}; {} timed out (> 5 s), {} failed, {} skipped (probes busy)",
                    e2e.sample_one_in,
                    e2e.all.probes,
                    percentiles(&e2e.all.latency),
                    e2e.all.timed_out,
                    e2e.all.failed,
                    e2e.skipped
                );
                if let (Some(during), Some(without)) =
                    (&e2e.during_held_transactions, &e2e.without_held_transactions)
                {
                    for (label, side) in
                        [("while transactions were held", during), ("the rest of the run", without)]
                    {
                        let _ = writeln!(
                            out,
                            "  {label}: {} probes, {}; {} timed out, {} failed",
                            side.probes,
                            percentiles(&side.latency),
                            side.timed_out,
                            side.failed
                        );
                    }
                    if without.latency.p99_ms > 0.0 {
                        let _ = writeln!(
                            out,
                            "  p99 while held ÷ p99 otherwise: {:.2}",
                            during.latency.p99_ms / without.latency.p99_ms
                        );
                    }
                }
                if e2e.skipped > e2e.all.probes {
                    let _ = writeln!(
                        out,
                        "  (more samples skipped than probed: slow periods are under-sampled; \
                         raise --e2e-probes, or --e2e-sample to sample less often)"
                    );
                }
            }
            skipped => {
                let _ = writeln!(out, "end to end: {}", skipped_text(skipped).unwrap_or_default());
            }
        }
        match &self.relay {
            Figure::Measured(rate) => {
                let _ = writeln!(
                    out,
                    "relay: {:.0} events published during the load, {:.0} events/s",
                    rate.events, rate.per_second
                );
            }
            skipped => {
                let _ = writeln!(out, "relay: {}", skipped_text(skipped).unwrap_or_default());
            }
        }
        match &self.projections {
            Figure::Measured(rates) => {
                let parts: Vec<String> = rates
                    .iter()
                    .map(|(name, rate)| {
                        format!(
                            "{name} {:.0} applied, {:.0} events/s",
                            rate.events, rate.per_second
                        )
                    })
                    .collect();
                let _ = writeln!(out, "projections: {}", parts.join("; "));
            }
            skipped => {
                let _ = writeln!(out, "projections: {}", skipped_text(skipped).unwrap_or_default());
            }
        }
        match &self.catch_up_seconds {
            Figure::Measured(seconds) => {
                let _ = writeln!(
                    out,
                    "caught up (relay backlog and projection lag 0) {seconds:.2} s after the load"
                );
            }
            skipped => {
                let _ = writeln!(out, "catch-up: {}", skipped_text(skipped).unwrap_or_default());
            }
        }
        if let Figure::Measured(mean) = &self.server_command_mean_ms {
            let _ = writeln!(
                out,
                "server-side mean command latency {mean:.2} ms (client-side mean {:.2} ms)",
                load.latency.mean_ms
            );
        }
        match &self.as_of {
            Figure::Measured(as_of) => {
                let _ = writeln!(out, "as-of queries:");
                let _ = writeln!(
                    out,
                    "{}",
                    query_line("GET /v1/payments?at_position=…", &as_of.payments_at_position)
                );
                let _ = writeln!(
                    out,
                    "{}",
                    query_line("GET /v1/orders/{id}?as_of=…", &as_of.order_as_of)
                );
            }
            skipped => {
                let _ =
                    writeln!(out, "as-of queries: {}", skipped_text(skipped).unwrap_or_default());
            }
        }
        match &self.rebuild {
            Figure::Measured(rebuild) => {
                let _ = writeln!(
                    out,
                    "rebuild {}: {}, {} events, {:.0} events/s (ledger's figure), {:.2} s wall ({:.0} events/s){}",
                    rebuild.projection,
                    rebuild.state,
                    rebuild.replayed,
                    rebuild.events_per_second,
                    rebuild.wall_seconds,
                    rebuild.wall_events_per_second,
                    rebuild.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                );
            }
            skipped => {
                let _ = writeln!(out, "rebuild: {}", skipped_text(skipped).unwrap_or_default());
            }
        }
        match &self.ledger_process {
            Figure::Measured(process) => {
                let memory = |memory: &Option<Memory>| {
                    memory.map_or_else(
                        || "unknown".to_owned(),
                        |m| format!("peak {:.1} MiB, now {:.1} MiB", m.peak_rss_mib, m.rss_mib),
                    )
                };
                let _ = writeln!(
                    out,
                    "ledger process {}: RSS after the load {}; at the end {}",
                    process.pid,
                    memory(&process.after_load),
                    memory(&process.at_end)
                );
                if let (Some(cores), Some(per_command)) =
                    (process.cpu_cores_during_load, process.cpu_ms_per_accepted_command)
                {
                    let _ = writeln!(
                        out,
                        "  CPU during the load: {cores:.2} cores busy, {per_command:.3} CPU-ms per accepted command"
                    );
                }
            }
            skipped => {
                let _ =
                    writeln!(out, "ledger process: {}", skipped_text(skipped).unwrap_or_default());
            }
        }

        match &self.cpu {
            Figure::Measured(cpu) => {
                let cores = |cores: Option<f64>| {
                    cores.map_or_else(|| "?".to_owned(), |cores| format!("{cores:.2}"))
                };
                let _ = writeln!(
                    out,
                    "machine CPU during the load ({:.0} cores): ledger {}, PostgreSQL {:.2}, \
                     this generator {}, other {:.2}, idle {:.2}",
                    cpu.cores,
                    cores(cpu.ledger),
                    cpu.postgres,
                    cores(cpu.generator),
                    cpu.other,
                    cpu.idle
                );
            }
            skipped => {
                let _ = writeln!(out, "machine CPU: {}", skipped_text(skipped).unwrap_or_default());
            }
        }

        let _ = writeln!(out, "\nbaselines (same PostgreSQL, same run):");
        match &self.baselines.pgbench {
            Figure::Measured(pgbench) => {
                let _ = writeln!(
                    out,
                    "  pgbench single-row insert, {} clients, {} s: {:.0} tps{}",
                    pgbench.clients,
                    pgbench.seconds,
                    pgbench.tps,
                    pgbench
                        .latency_average_ms
                        .map(|ms| format!(" (average latency {ms:.2} ms)"))
                        .unwrap_or_default()
                );
            }
            skipped => {
                let _ = writeln!(out, "  pgbench: {}", skipped_text(skipped).unwrap_or_default());
            }
        }
        match &self.baselines.raw_read {
            Figure::Measured(raw) => {
                let _ = writeln!(
                    out,
                    "  raw ordered read of events (COPY … ORDER BY tx_id, global_position): {} events, {:.1} MiB in {:.3} s, {:.0} events/s",
                    raw.events,
                    raw.bytes as f64 / 1_048_576.0,
                    raw.seconds,
                    raw.events_per_second
                );
            }
            skipped => {
                let _ = writeln!(out, "  raw read: {}", skipped_text(skipped).unwrap_or_default());
            }
        }
        match &self.baselines.raw_produce {
            Figure::Measured(raw) => {
                let _ = writeln!(
                    out,
                    "  raw produce of the store's events, as the relay encodes them, to {}: {} events in {:.3} s, {:.0} events/s",
                    raw.topic, raw.events, raw.seconds, raw.events_per_second
                );
            }
            skipped => {
                let _ =
                    writeln!(out, "  raw produce: {}", skipped_text(skipped).unwrap_or_default());
            }
        }
        let ratio =
            |value: Option<f64>| value.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.3}"));
        let _ = writeln!(
            out,
            "ratios: commands/s ÷ pgbench tps = {}; rebuild ÷ raw read = {}; relay during the load ÷ raw produce = {}",
            ratio(self.ratios.commands_per_pgbench_tps),
            ratio(self.ratios.rebuild_per_raw_read),
            ratio(self.ratios.relay_per_raw_produce)
        );
        out
    }
}
