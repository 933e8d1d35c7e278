//! `ledger bench`'s command line, and where it finds what it is not given: the
//! development tokens `scripts/up` wrote, whether the ledger runs on this machine.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::load;
use crate::mix::{self, Mix};

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
    /// Send at most this many commands per second, all clients together (default: each
    /// client as fast as it is answered). For latency at a given share of the peak.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Midway through the load, hold a write transaction open this long in another
    /// database of the server and one idle in the ledger's database on a scratch table
    /// (needs --database-url and --duration): the end-to-end latency during it is reported
    /// next to the rest of the run's.
    #[arg(long, value_parser = parse_duration, requires = "database_url", conflicts_with = "count")]
    pub hold_transactions: Option<Duration>,
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

fn parse_rate(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("`{raw}`: commands per second, a positive number")),
    }
}

fn parse_probes(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(probes) if (1..=256).contains(&probes) => Ok(probes),
        _ => Err(format!("`{raw}`: a number of probes from 1 to 256")),
    }
}

/// A duration as people write it (`500ms`, `30s`, `2m`, `1m 30s`, or a bare number of
/// seconds); above zero.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    match bus::parse_duration(raw) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err(format!("`{raw}`: the duration must be above zero")),
        Err(error) => Err(format!("`{raw}`: {error} (e.g. 30s, 2m, 500ms)")),
    }
}

/// The tokens given, else those of the development token file `scripts/up` writes.
pub(crate) fn tokens(args: &BenchArgs) -> (Option<String>, Option<String>) {
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

pub(crate) fn is_local(url: &str) -> bool {
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
