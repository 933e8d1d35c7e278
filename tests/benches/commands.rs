//! Command throughput over HTTP next to raw `pgbench` single-row inserts at the same
//! concurrency, against the same PostgreSQL, in the same run: each command in its own
//! transaction, then with group commit, then group commit paced at half its peak rate
//! (the latency an operator sees with headroom).
//!
//! `cargo bench -p ledger-tests --bench commands` (`BENCH_CLIENTS`, default 32;
//! `BENCH_SECONDS`, default 10; `BENCH_WITHOUT_NOTIFY=1` drops the relay's wake-up hint;
//! `BENCH_GROUP_COMMIT_ARGS="--group-commit-writers 2"` tries other group-commit settings).
//! Each command places an order: one durable event. The server runs in this process, so
//! client and server share the machine as a load generator on the same host would.

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use bench::measure::{env_or, percentile};
use std::time::{Duration, Instant};

use clap::Parser;
use ledger_tests::TestDatabase;
use serde_json::json;
use uuid::Uuid;

struct Run {
    latencies: Vec<Duration>,
    failures: u64,
    per_second: f64,
}

impl Run {
    fn line(&self, what: &str) -> String {
        format!(
            "{what}: {} ok, {} failed, {:.0} commands/s, p50 {:.2?}, p95 {:.2?}, p99 {:.2?}, max {:.2?}",
            self.latencies.len(),
            self.failures,
            self.per_second,
            percentile(&self.latencies, 0.50),
            percentile(&self.latencies, 0.95),
            percentile(&self.latencies, 0.99),
            self.latencies.last().copied().unwrap_or_default(),
        )
    }
}

/// Places orders from `clients` concurrent clients for `seconds` against a ledger started
/// with `extra` flags on a fresh database; `rate` (commands/s over all clients) paces
/// them, else each sends as fast as it is answered.
async fn run(
    clients: usize,
    seconds: u64,
    extra: &[&str],
    rate: Option<f64>,
) -> anyhow::Result<Run> {
    let database = TestDatabase::create().await?;
    if std::env::var_os("BENCH_WITHOUT_NOTIFY").is_some() {
        // To measure what the relay's wake-up hint costs the write path.
        let client = database.client().await?;
        client.batch_execute("ALTER TABLE events DISABLE TRIGGER events_notify_appended").await?;
    }
    let pool_size = clients.to_string();
    let mut args = vec![
        "serve",
        "--database-url",
        &database.url,
        "--http-addr",
        "127.0.0.1:0",
        "--roles",
        "api",
        "--db-pool-size",
        &pool_size,
        "--api-tokens",
        "write:bench-write-token",
    ];
    args.extend_from_slice(extra);
    // Parsed as `ledger serve` parses them: the tuning comes as flags.
    let settings = ledger::config::ServeArgs::try_parse_from(args)?.settings()?;
    let application = ledger::Application::build(settings).await?;
    let address = application.local_addr()?;
    let server = tokio::spawn(application.run(std::future::pending()));

    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_static("Bearer bench-write-token"),
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .default_headers(headers)
        .build()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let interval = rate.map(|rate| Duration::from_secs_f64(clients as f64 / rate));
    let workers = (0..clients).map(|client| {
        let http = http.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            // Paced clients start spread over one interval, not all at once; a late request
            // is sent at once, and the next ones keep the schedule.
            let mut pace = interval.map(|i| {
                let first = started + i.mul_f64(client as f64 / clients as f64);
                tokio::time::interval_at(first.into(), i)
            });
            while Instant::now() < deadline {
                if let Some(pace) = pace.as_mut() {
                    pace.tick().await;
                }
                let body = json!({
                    "order_id": Uuid::now_v7(), "customer_id": "cus_bench",
                    "customer_email": "bench@example.com", "currency": "EUR",
                    "items": [{ "sku": "BOOK-1", "quantity": 1, "unit_price_minor": 1250 }]
                });
                let sent = Instant::now();
                match http.post(format!("http://{address}/v1/orders")).json(&body).send().await {
                    Ok(response) if response.status().as_u16() == 201 => {
                        latencies.push(sent.elapsed())
                    }
                    _ => failures += 1,
                }
            }
            (latencies, failures)
        })
    });
    let mut latencies = Vec::new();
    let mut failures = 0;
    for worker in futures_util::future::join_all(workers).await {
        let (mut worker_latencies, worker_failures) = worker?;
        latencies.append(&mut worker_latencies);
        failures += worker_failures;
    }
    let elapsed = started.elapsed();
    server.abort();
    latencies.sort();
    let per_second = latencies.len() as f64 / elapsed.as_secs_f64();
    Ok(Run { latencies, failures, per_second })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients: usize = env_or("BENCH_CLIENTS", 32);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    // Group-commit settings to try, e.g. `--group-commit-writers 2` (default: the ledger's).
    let tuning: String = env_or("BENCH_GROUP_COMMIT_ARGS", String::new());
    let tuning: Vec<&str> = tuning.split_whitespace().collect();
    let alone = run(clients, seconds, &["--no-group-commit"], None).await?;
    let grouped = run(clients, seconds, &tuning, None).await?;
    let paced = run(clients, seconds, &tuning, Some(grouped.per_second / 2.0)).await?;

    // Baseline: pgbench, one single-row insert per transaction, same server and clients.
    let database = TestDatabase::create().await?;
    let client = database.client().await?;
    client
        .batch_execute("CREATE TABLE bench_inserts (id bigserial PRIMARY KEY, payload jsonb)")
        .await?;
    let script = std::env::temp_dir().join(format!("ledger-bench-{}.sql", Uuid::new_v4()));
    std::fs::write(
        &script,
        "INSERT INTO bench_inserts (payload) VALUES ('{\"sku\": \"BOOK-1\"}');\n",
    )?;
    let output = std::process::Command::new("pgbench")
        .args(["-n", "-c", &clients.to_string(), "-j", "2", "-T", &seconds.to_string(), "-f"])
        .arg(&script)
        .arg(&database.url)
        .output()?;
    let _ = std::fs::remove_file(&script);
    let report = String::from_utf8_lossy(&output.stdout);
    let pgbench_tps: f64 = report
        .lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no tps in pgbench output: {report}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;

    println!("clients: {clients}, duration: {seconds}s per run");
    println!("{}", alone.line("one transaction per command"));
    println!("{}", grouped.line("group commit"));
    println!("{}", paced.line(&format!("group commit paced at {:.0}/s", grouped.per_second / 2.0)));
    println!("pgbench single-row insert: {pgbench_tps:.0} tps");
    println!(
        "ledger / pgbench: {:.2} one per transaction, {:.2} group commit",
        alone.per_second / pgbench_tps,
        grouped.per_second / pgbench_tps
    );
    Ok(())
}
