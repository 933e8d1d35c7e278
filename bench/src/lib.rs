//! `ledger bench`: a load generator for a *running* ledger, through its real HTTP API.
//!
//! The in-process benches (`cargo bench -p ledger-tests`) measure one part at a time on a
//! fresh database; this measures a deployed ledger as its clients see it, end to end, and
//! puts each figure next to a raw PostgreSQL baseline taken in the same run:
//!
//! 1. **Load** ([`load`]): N clients run order lifecycles ([`orders`]) drawn from a
//!    command mix ([`mix`]), with idempotency keys; outcomes by command and status,
//!    latency histograms per command ([`stats`]), and end-to-end probes (a command's 201
//!    → the payments read model showing it).
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

pub mod asof;
pub mod baseline;
pub mod client;
pub mod load;
pub mod mix;
pub mod orders;
pub mod process;
pub mod rebuild;
pub mod report;
pub mod scrape;
pub mod stats;
pub mod svg;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use client::Api;
use load::{LoadSettings, Stop};
use mix::{Kind, Mix};
use report::{Baselines, CommandReport, Figure, LedgerProcess, Load, Rate, Ratios, Report};
use scrape::Scrape;

/// `LEDGER_MAX_IN_FLIGHT_PER_TOKEN`'s default: more requests at once with one token are 429.
const DEFAULT_IN_FLIGHT_PER_TOKEN: usize = 64;

/// How long the bench waits after the load for the relay and projections to catch up.
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(60);

/// Set by the first Ctrl-C: the load stops, the phases not yet run are skipped, and the
/// report of what was measured is still printed. A second Ctrl-C exits at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

fn on_ctrl_c() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ninterrupted: stopping the load and skipping what is left (Ctrl-C again to quit)"
            );
            INTERRUPTED.store(true, Ordering::Relaxed);
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}

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

/// `ledger bench`.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Base URL of the running ledger.
    #[arg(long, env = "LEDGER_BENCH_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A write (or admin) token, for commands and read-your-writes queries. Default: the
    /// write token of the development tokens `scripts/up` generated, if found.
    #[arg(long, env = "LEDGER_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// An admin token: enables the rebuild figure. Default: the development admin token,
    /// if found.
    #[arg(long, env = "LEDGER_BENCH_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Concurrent clients, each running its own orders' lifecycles.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub clients: u32,
    /// How long to send commands (e.g. 30s, 2m, 1m30s, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Send this many commands instead of running for --duration.
    #[arg(long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Relative weights of the commands (place, capture, fail, refund, cancel, ship).
    #[arg(long, default_value = mix::DEFAULT_MIX, value_parser = Mix::parse)]
    pub mix: Mix,
    /// Percent of commands sent where they break a rule, on purpose (expect 409s).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub invalid_percent: u32,
    /// Probe the end-to-end latency of one accepted command in this many (0: never).
    #[arg(long, default_value_t = 20)]
    pub e2e_sample: u32,
    /// End-to-end probes waiting at once, at most (each costs the ledger a read every
    /// 10 ms while it waits; a sample drawn while all are busy is skipped).
    #[arg(long, default_value_t = load::DEFAULT_PROBES, value_parser = parse_probes)]
    pub e2e_probes: usize,
    /// As-of queries after the load (half by position, half by time; 0: none).
    #[arg(long, default_value_t = 300)]
    pub as_of_queries: u32,
    /// The projection to rebuild with --admin-token, or `none`.
    #[arg(long, default_value = "payments", value_parser = ["payments", "notifications", "none"])]
    pub rebuild: String,
    /// The ledger's database, for the pgbench and raw-read baselines (nothing is written
    /// to the ledger's tables: pgbench inserts into a scratch table it drops afterwards).
    #[arg(long, env = "LEDGER_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The broker, for the raw-produce baseline (a scratch topic under the prefix).
    #[command(flatten)]
    pub kafka: bus_kafka::KafkaArgs,
    /// How long pgbench runs.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub pgbench_seconds: u64,
    /// The ledger's process id, for its RSS and CPU (default: the pid file of scripts/up).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw p50/p95/p99 command latency per second as an SVG chart in this file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Seed of the clients' random choices (default: random; the report gives it).
    #[arg(long)]
    pub seed: Option<u64>,
}

fn parse_probes(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(probes) if (1..=256).contains(&probes) => Ok(probes),
        _ => Err(format!("`{raw}`: a number of probes from 1 to 256")),
    }
}

/// Parses `500ms`, `30s`, `2m`, `1h`, `1m30s`, or a bare number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = raw;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_end =
            rest[digits..].find(|c: char| c.is_ascii_digit()).map_or(rest.len(), |i| digits + i);
        let number: u64 =
            rest[..digits].parse().map_err(|_| format!("`{raw}`: expected e.g. 30s, 2m, 500ms"))?;
        let part = match &rest[digits..unit_end] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number * 60),
            "h" => Duration::from_secs(number * 3600),
            unit => return Err(format!("`{raw}`: unknown unit `{unit}` (ms, s, m or h)")),
        };
        total += part;
        rest = &rest[unit_end..];
    }
    if total.is_zero() {
        return Err(format!("`{raw}`: the duration must be above zero"));
    }
    Ok(total)
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

/// The tokens given, else those of the development token file `scripts/up` writes.
fn tokens(args: &BenchArgs) -> (Option<String>, Option<String>) {
    if args.token.is_some() {
        return (args.token.clone(), args.admin_token.clone());
    }
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("LEDGER_STATE_DIR") {
        files.push(PathBuf::from(dir).join("dev-tokens"));
    }
    files.push(PathBuf::from("target/dev/dev-tokens"));
    files.push(PathBuf::from(".ledger/dev-tokens"));
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let role = |role: &str| {
            text.split(',')
                .filter_map(|entry| entry.trim().split_once(':'))
                .find(|(name, _)| *name == role)
                .map(|(_, token)| token.to_owned())
        };
        if let Some(write) = role("write").or_else(|| role("admin")) {
            eprintln!("using the development tokens in {}", file.display());
            return (Some(write), args.admin_token.clone().or_else(|| role("admin")));
        }
    }
    (None, args.admin_token.clone())
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

fn is_local(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else { return false };
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_usual_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn only_loopback_addresses_are_local() {
        assert!(is_local("http://127.0.0.1:8080"));
        assert!(is_local("http://localhost:8080"));
        assert!(is_local("http://[::1]:8080"));
        assert!(!is_local("http://10.0.0.5:8080"));
        assert!(!is_local("http://ledger.internal"));
    }
}
