//! The bench run: preflight, load, catch-up, as-of queries, baselines, rebuild, report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::args::{is_local, tokens, BenchArgs};
use crate::client::{self, Api};
use crate::interrupt::{interrupted, on_ctrl_c};
use crate::load::{self, LoadSettings, Stop};
use crate::mix::Kind;
use crate::report::{Baselines, CommandReport, Figure, LedgerProcess, Load, Rate, Ratios, Report};
use crate::scrape::{self, Scrape};
use crate::{asof, baseline, process, rebuild, report, svg};

/// `LEDGER_MAX_IN_FLIGHT_PER_TOKEN`'s default: more requests at once with one token are 429.
const DEFAULT_IN_FLIGHT_PER_TOKEN: usize = 64;

/// How long the bench waits after the load for the relay and projections to catch up.
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(60);

/// Runs a later phase, unless the run was interrupted.
async fn phase<T>(
    announce: &str,
    measure: impl std::future::Future<Output = anyhow::Result<T>>,
) -> Figure<T> {
    if interrupted() {
        return Figure::skipped("interrupted");
    }
    eprintln!("{announce}");
    Figure::from_result(measure.await)
}

/// Runs the bench and prints (and writes) its report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (token, admin_token) = tokens(&args);
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let api = Api::new(
        &args.url,
        token,
        admin_token,
        args.clients as usize + args.e2e_probes + asof::CONCURRENCY,
        client::REQUEST_TIMEOUT,
    )?;
    preflight(&api).await?;
    on_ctrl_c();

    let pid = if is_local(&args.url) {
        process::find_pid(args.pid)
    } else {
        Err(format!("{} is not on this machine", args.url))
    };
    let stop = match args.count {
        Some(count) => Stop::Count(count),
        None => Stop::After(args.duration),
    };
    eprintln!(
        "ledger bench: {} clients against {} for {}, mix {}",
        args.clients,
        api.base(),
        match stop {
            Stop::After(duration) => format!("{duration:?}"),
            Stop::Count(count) => format!("{count} commands"),
            Stop::Manual => "as long as it is not interrupted".to_owned(),
        },
        args.mix
    );

    if args.clients as usize + args.e2e_probes > DEFAULT_IN_FLIGHT_PER_TOKEN {
        eprintln!(
            "note: {} clients + {} probes exceed the {DEFAULT_IN_FLIGHT_PER_TOKEN} requests in \
             flight a token may have by default (LEDGER_MAX_IN_FLIGHT_PER_TOKEN): expect 429s \
             unless the ledger allows more",
            args.clients, args.e2e_probes
        );
    }
    let cpu_before = pid.as_ref().ok().and_then(|pid| process::cpu_seconds(*pid));
    let generator_cpu_before = process::cpu_seconds(std::process::id());
    let machine_before = process::CpuSample::take(pid.as_ref().ok().copied());
    let before = api.metrics().await;
    let outcome = load::run(
        api.clone(),
        LoadSettings {
            clients: args.clients,
            stop,
            mix: args.mix.clone(),
            invalid_percent: args.invalid_percent,
            e2e_sample: args.e2e_sample,
            e2e_probes: args.e2e_probes,
            seed,
            rate: args.rate,
            hold: args
                .hold_transactions
                .zip(args.database_url.clone())
                .map(|(hold, database_url)| load::HoldSettings { database_url, hold }),
        },
        pid.as_ref().ok().copied(),
    )
    .await?;
    let after = &outcome.at_end.metrics;
    let cpu_after = outcome.at_end.ledger_cpu_seconds;
    let memory_after_load = outcome.at_end.ledger_memory;

    let elapsed = outcome.elapsed.as_secs_f64().max(1e-9);
    let commands: Vec<CommandReport> = Kind::ALL
        .into_iter()
        .filter_map(|kind| {
            let stats = outcome.recorder.commands.get(&kind)?;
            (stats.requests() > 0 || args.mix.weight(kind) > 0).then(|| CommandReport {
                command: kind,
                weight: args.mix.weight(kind),
                requests: stats.requests(),
                accepted: stats.accepted(),
                accepted_per_second: stats.accepted() as f64 / elapsed,
                deliberately_invalid: stats.deliberately_invalid,
                fallbacks: stats.fallbacks,
                outcomes: stats.outcomes.clone(),
                latency: stats.latency.summary(),
            })
        })
        .collect();
    let requests: u64 = commands.iter().map(|c| c.requests).sum();
    let accepted: u64 = commands.iter().map(|c| c.accepted).sum();
    let load = Load {
        elapsed_seconds: elapsed,
        interrupted: outcome.interrupted,
        requests,
        accepted,
        accepted_per_second: accepted as f64 / elapsed,
        requests_per_second: requests as f64 / elapsed,
        latency: outcome.recorder.overall()?.summary(),
        commands,
        first_transport_error: outcome.first_transport_error.clone(),
        generator_cpu_cores: generator_cpu_before
            .zip(outcome.at_end.generator_cpu_seconds)
            .map(|(before, after)| (after - before) / elapsed),
    };
    if accepted == 0 {
        eprintln!("no command was accepted: is the token a write token of this ledger?");
    }
    let end_to_end = if args.e2e_sample == 0 {
        Figure::skipped("--e2e-sample 0")
    } else {
        Figure::Measured(outcome.end_to_end.report(args.e2e_sample))
    };
    let (relay, projections, server_command_mean_ms) = match (&before, after) {
        (Ok(before), Ok(after)) => server_rates(before, after),
        (Err(error), _) | (_, Err(error)) => {
            let why = format!("/metrics could not be read: {error:#}");
            (Figure::skipped(&why), Figure::skipped(&why), Figure::skipped(why))
        }
    };

    let catch_up_seconds = phase(
        "waiting for the relay and the projections to catch up…",
        catch_up(&api, outcome.at_end.at),
    )
    .await;

    let as_of = match (args.as_of_queries, outcome.positions) {
        (0, _) => Figure::skipped("--as-of-queries 0"),
        (_, None) => Figure::skipped("no command was accepted, so there is no cut to ask about"),
        (queries, Some(positions)) => {
            phase(
                &format!("{queries} as-of queries…"),
                asof::run(&api, queries, positions, &outcome.placed, outcome.finished_at, seed),
            )
            .await
        }
    };

    let raw_read = match &args.database_url {
        Some(url) => phase("raw ordered read of the events…", baseline::raw_read(url)).await,
        None => Figure::skipped("no --database-url"),
    };
    let rebuild = if args.rebuild == "none" {
        Figure::skipped("--rebuild none")
    } else if !api.has_admin() {
        Figure::skipped("no --admin-token")
    } else {
        phase(&format!("rebuilding {}…", args.rebuild), rebuild::run(&api, &args.rebuild)).await
    };
    let pgbench = match &args.database_url {
        Some(url) => {
            phase(
                &format!("pgbench, {} clients, {} s…", args.clients, args.pgbench_seconds),
                baseline::pgbench(url, args.clients, args.pgbench_seconds),
            )
            .await
        }
        None => Figure::skipped("no --database-url"),
    };
    let raw_produce = match &args.database_url {
        Some(url) => {
            phase(
                "raw produce to a scratch topic…",
                baseline::raw_produce(url, &args.kafka.settings()),
            )
            .await
        }
        None => Figure::skipped("no --database-url"),
    };
    let baselines = Baselines { pgbench, raw_read, raw_produce };

    let ledger_process = match pid {
        Ok(pid) => {
            let cpu = cpu_before.zip(cpu_after).map(|(before, after)| after - before);
            Figure::Measured(LedgerProcess {
                pid,
                after_load: memory_after_load,
                at_end: process::memory(pid),
                cpu_seconds_during_load: cpu,
                cpu_cores_during_load: cpu.map(|cpu| cpu / elapsed),
                cpu_ms_per_accepted_command: cpu
                    .filter(|_| accepted > 0)
                    .map(|cpu| cpu * 1000.0 / accepted as f64),
            })
        }
        Err(why) => Figure::skipped(why),
    };

    let cpu = match (machine_before, &outcome.at_end.cpu) {
        (Some(before), Some(after)) => Figure::Measured(before.until(after, elapsed)),
        _ => Figure::skipped("/proc/stat could not be read"),
    };

    let ratios = Ratios::of(&load, &relay, &rebuild, &baselines);
    let report = Report {
        url: api.base().to_owned(),
        started_at: outcome.started_at,
        finished_at: chrono::Utc::now(),
        settings: report::Settings {
            clients: args.clients,
            duration_seconds: args.count.is_none().then_some(args.duration.as_secs_f64()),
            count: args.count,
            mix: args.mix.clone(),
            invalid_percent: args.invalid_percent,
            e2e_sample_one_in: args.e2e_sample,
            e2e_probes: args.e2e_probes,
            as_of_queries: args.as_of_queries,
            seed,
        },
        timeline: outcome.recorder.seconds(),
        load,
        end_to_end,
        relay,
        projections,
        catch_up_seconds,
        server_command_mean_ms,
        as_of,
        rebuild,
        ledger_process,
        cpu,
        baselines,
        ratios,
    };

    print!("{}", report.human());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON report: {}", path.display());
    }
    if let Some(path) = &args.svg {
        let title = format!(
            "ledger bench: command latency per second, {} clients, {:.0} commands/s",
            args.clients, report.load.accepted_per_second
        );
        std::fs::write(path, svg::render(&title, &report.timeline))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("SVG chart: {}", path.display());
    }
    Ok(())
}

/// Fails early, with a useful message, when the ledger is not there or refuses the token.
async fn preflight(api: &Api) -> anyhow::Result<()> {
    let health = api.get("/healthz").await.with_context(|| {
        format!("no ledger answers at {} (start one with scripts/up)", api.base())
    })?;
    if !health.status.is_success() {
        anyhow::bail!("{}/healthz answered {}", api.base(), health.outcome());
    }
    let probe = api.get("/v1/payments?limit=1").await?;
    match probe.status.as_u16() {
        200 => Ok(()),
        401 | 403 => anyhow::bail!(
            "the ledger refused the token ({}): give a write token with --token or \
             LEDGER_BENCH_TOKEN (scripts/up prints one)",
            probe.outcome()
        ),
        _ => anyhow::bail!(
            "GET /v1/payments answered {} (does this process serve the api role?)",
            probe.outcome()
        ),
    }
}

type ServerRates = (Figure<Rate>, Figure<BTreeMap<String, Rate>>, Figure<f64>);

/// Relay and projection rates and the server's mean command latency over the load.
fn server_rates(before: &Scrape, after: &Scrape) -> ServerRates {
    let relay = match scrape::rate(before, after, "ledger_relay_events_published_total", &[]) {
        Some((events, per_second)) => Figure::Measured(Rate { events, per_second }),
        None => Figure::skipped(
            "no ledger_relay_events_published_total in /metrics: this process runs no relay",
        ),
    };
    let applied = "ledger_projection_events_applied_total";
    let mut rates = BTreeMap::new();
    for projection in after.label_values(applied, "projection") {
        if let Some((events, per_second)) =
            scrape::rate(before, after, applied, &[("projection", &projection)])
        {
            rates.insert(projection, Rate { events, per_second });
        }
    }
    let projections = if rates.is_empty() {
        Figure::skipped(format!("no {applied} in /metrics: this process runs no projector"))
    } else {
        Figure::Measured(rates)
    };
    let sum = scrape::rate(before, after, "ledger_command_duration_seconds_sum", &[]);
    let count = scrape::rate(before, after, "ledger_command_duration_seconds_count", &[]);
    let mean = match (sum, count) {
        (Some((seconds, _)), Some((commands, _))) if commands > 0.0 => {
            Figure::Measured(seconds / commands * 1000.0)
        }
        _ => Figure::skipped("no ledger_command_duration_seconds in /metrics"),
    };
    (relay, projections, mean)
}

/// Seconds from `since` (the end of the load) until the relay's backlog and every
/// projection's lag read 0 in `/metrics`. Polling starts once the end-to-end probes have
/// drained, so a figure at or below that moment is an upper bound.
async fn catch_up(api: &Api, since: Instant) -> anyhow::Result<f64> {
    let started = since;
    loop {
        let scrape = api.metrics().await?;
        let backlog = scrape
            .value("ledger_relay_backlog_events", &[])
            .context("no ledger_relay_backlog_events in /metrics")?;
        let lag = scrape.value("ledger_projection_lag_events", &[]).unwrap_or(0.0);
        if backlog == 0.0 && lag == 0.0 {
            return Ok(started.elapsed().as_secs_f64());
        }
        if interrupted() {
            anyhow::bail!("interrupted");
        }
        if started.elapsed() > CATCH_UP_PATIENCE {
            anyhow::bail!(
                "not caught up {CATCH_UP_PATIENCE:?} after the load (relay backlog {backlog}, \
                 projection lag {lag})"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
