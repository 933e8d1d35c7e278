//! The ledger on a young store and on an old one, in the same run: does a long history slow
//! commands, queries, the relay or the projections?
//!
//! `cargo build --release -p ledger && LEDGER_BIN=$PWD/target/release/ledger cargo bench -p
//! ledger-tests --bench history` (needs PostgreSQL and Kafka; `BENCH_EVENTS` is a comma
//! list of history sizes, default `100000,10000000`, the first the baseline;
//! `BENCH_SECONDS` the load's length, default 30; `BENCH_REQUESTS` the read-model queries
//! per kind, default 1000; `BENCH_ROUNDS` how many times each store is loaded, in turn,
//! default 1, the median of each round's ratios reported when more).
//!
//! Per size: a fresh database is filled with orders' lifecycles
//! ([`ledger_tests::lifecycles`], as the rebuild bench does); both read models are built
//! from it by a rebuild (its rate and this process's peak memory are reported too), and the
//! relay's checkpoint is set at the end of the history, as a ledger that had published it
//! all would have it. A backlog of new orders is appended (`BENCH_BACKLOG`, default
//! 500 000 events; `BENCH_BACKLOG_IDS=v7` gives its orders time-ordered ids instead of
//! hashed ones) and the release `ledger` started with every role on that database (and
//! on topics of its own): the relay's and each projection's rate through the backlog are
//! timed from the process being ready to the backlog's end. Then `ledger bench` loads it (32 clients, the
//! default mix, as-of queries after the load, pgbench beside it); after it, this bench
//! sends read-model queries for orders of the whole history, one at a time. Every figure
//! of the large history is given next to the baseline's, as a ratio.

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use anyhow::Context;
use bench::measure::{env_or, percentile};
use ledger_tests::lifecycles;
use ledger_tests::{history, poll_until, LedgerConfig, LedgerProcess, TestDatabase};
use projections::rebuild::{self, RebuildProgress, Settings, Target};
use projections::Projection;
use serde_json::Value;
use uuid::Uuid;

/// The figures of one size.
#[derive(Clone, Debug, Default)]
struct Figures {
    events: i64,
    /// Rebuild rates (events/s) and this process's peak RSS (MiB) during each.
    rebuild: Vec<(&'static str, f64, f64)>,
    commands_per_second: f64,
    command_p99_ms: f64,
    pgbench_tps: f64,
    relay_per_second: f64,
    payments_per_second: f64,
    notifications_per_second: f64,
    end_to_end_p99_ms: f64,
    caught_up_seconds: f64,
    as_of_list_p99_ms: f64,
    order_as_of_p99_ms: f64,
    payments_by_order_p99_ms: f64,
    payments_by_customer_p99_ms: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<i64> = std::env::var("BENCH_EVENTS")
        .unwrap_or_else(|_| "100000,10000000".to_owned())
        .split(',')
        .map(|size| size.trim().parse().context("BENCH_EVENTS: a comma list of event counts"))
        .collect::<anyhow::Result<_>>()?;
    let seconds: u64 = env_or("BENCH_SECONDS", 30);
    let requests: usize = env_or("BENCH_REQUESTS", 1_000);
    let backlog: i64 = env_or("BENCH_BACKLOG", 500_000);
    let rounds: usize = env_or("BENCH_ROUNDS", 1);
    let mut stores = Vec::new();
    for events in sizes {
        stores.push(Store::prepare(events, backlog).await?);
    }
    // Each round loads every store once, in turn, so that a slow stretch of the shared
    // machine falls on both sizes over the rounds; ratios are taken within a round.
    let mut rounds_of: Vec<Vec<Figures>> = Vec::new();
    for round in 1..=rounds {
        let mut this_round = Vec::new();
        for store in &stores {
            let figures = store.load(seconds, requests).await?;
            println!("round {round}: {figures:#?}");
            this_round.push(figures);
        }
        print_table(&this_round);
        rounds_of.push(this_round);
    }
    if rounds > 1 {
        print_medians(&rounds_of);
    }
    for store in stores {
        store.stop().await?;
    }
    Ok(())
}

/// A store of one size with a ledger running on it.
struct Store {
    database: TestDatabase,
    client: tokio_postgres::Client,
    config: LedgerConfig,
    ledger: LedgerProcess,
    /// What was measured once, while preparing it.
    prepared: Figures,
}

impl Store {
    /// A fresh store of about `events` events, its read models rebuilt, the relay's checkpoint
    /// at its end, a backlog of `backlog` new events; then the ledger, timed through it.
    async fn prepare(events: i64, backlog: i64) -> anyhow::Result<Self> {
        let database = TestDatabase::create().await?;
        let client = database.client().await?;
        let generated_in = lifecycles::generate(&client, events).await?;
        let events: i64 = client.query_one("SELECT count(*) FROM events", &[]).await?.get(0);
        println!("\n== {events} events generated in {generated_in:.1?}");
        let mut figures = Figures { events, ..Figures::default() };

        let pool = database.pool()?;
        for (name, rate, peak) in [
            rebuilt(&pool, &projections::payments::Payments, events).await?,
            rebuilt(&pool, &projections::notifications::Notifications, events).await?,
        ] {
            println!("rebuilt {name}: {rate:.0} events/s, peak RSS {peak:.0} MiB");
            figures.rebuild.push((name, rate, peak));
        }
        client
            .batch_execute(
                "INSERT INTO relay_checkpoints (name, tx_id, global_position, published_events)
             SELECT 'kafka', tx_id, global_position, (SELECT count(*) FROM events)
               FROM events ORDER BY tx_id DESC, global_position DESC LIMIT 1",
            )
            .await?;
        history::paid_orders_with(&client, "history-backlog", backlog, backlog_ids()).await?;
        // Separate statements: VACUUM cannot run in the implicit transaction of a multi-statement
        // string.
        client.batch_execute("VACUUM ANALYZE").await?;
        client.batch_execute("CHECKPOINT").await?;

        let config = LedgerConfig::new(&database.url)?.roles("api,relay,projector");
        let ledger = LedgerProcess::start(config.clone()).await?;
        let started = Instant::now();
        let published = "SELECT published_events FROM relay_checkpoints WHERE name = 'kafka'";
        figures.relay_per_second = drain_rate(&client, published, events, backlog, started).await?;
        for (projection, rate) in [
            ("payments", &mut figures.payments_per_second),
            ("notifications", &mut figures.notifications_per_second),
        ] {
            let applied = format!(
                "SELECT applied_events FROM projection_status WHERE projection = '{projection}'"
            );
            *rate = drain_rate(&client, &applied, events, backlog, started).await?;
        }
        Ok(Self { database, client, config, ledger, prepared: figures })
    }

    /// A `ledger bench` load, then the read-model queries.
    async fn load(&self, seconds: u64, requests: usize) -> anyhow::Result<Figures> {
        let Self { database, client, config, ledger, prepared } = self;
        let mut figures = prepared.clone();
        let json = std::env::temp_dir().join(format!("history-bench-{}.json", Uuid::new_v4()));
        let status = tokio::process::Command::new(&config.binary)
            .arg("bench")
            .args(["--url", &ledger.url("")])
            .args(["--token", ledger_tests::process::ADMIN_TOKEN])
            .args(["--duration", &format!("{seconds}s")])
            .args(["--rebuild", "none"])
            .args(["--database-url", &database.url])
            .args(["--kafka-brokers", &config.kafka_brokers])
            .args(["--topic-prefix", &config.topic_prefix])
            .args(["--pgbench-seconds", "10"])
            .arg("--json")
            .arg(&json)
            .status()
            .await
            .context("running ledger bench")?;
        anyhow::ensure!(status.success(), "ledger bench failed: {status}");
        let report: Value = serde_json::from_slice(&std::fs::read(&json)?)?;
        let _ = std::fs::remove_file(&json);
        let number = |pointer: &str| {
            report
                .pointer(pointer)
                .and_then(Value::as_f64)
                .with_context(|| format!("{pointer} in the report of ledger bench"))
        };
        figures.commands_per_second = number("/load/accepted_per_second")?;
        figures.command_p99_ms = number("/load/latency/p99_ms")?;
        figures.pgbench_tps = number("/baselines/pgbench/tps")?;
        figures.end_to_end_p99_ms = number("/end_to_end/latency/p99_ms")?;
        figures.caught_up_seconds = number("/catch_up_seconds")?;
        figures.as_of_list_p99_ms = number("/as_of/payments_at_position/latency/p99_ms")?;
        figures.order_as_of_p99_ms = number("/as_of/order_as_of/latency/p99_ms")?;

        // Orders and customers from the whole history, at random.
        let orders: Vec<Uuid> = sample(client, "order_id", requests).await?;
        let customers: Vec<String> = sample(client, "customer_id", requests).await?;
        figures.payments_by_order_p99_ms =
            p99_of(ledger, orders.iter().map(|order| format!("/v1/payments/{order}"))).await?;
        figures.payments_by_customer_p99_ms = p99_of(
            ledger,
            customers
                .iter()
                .map(|customer| format!("/v1/payments?customer_id={customer}&limit=50")),
        )
        .await?;
        Ok(figures)
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.ledger.terminate(Duration::from_secs(10)).await?;
        Ok(())
    }
}

/// `count` values of `column` from random rows of the payments read model.
async fn sample<T>(
    client: &tokio_postgres::Client,
    column: &str,
    count: usize,
) -> anyhow::Result<Vec<T>>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    let query = format!("SELECT {column} FROM payments ORDER BY random() LIMIT $1");
    let rows = client.query(&query, &[&(count as i64)]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// How the backlog's orders are identified: `BENCH_BACKLOG_IDS=random` (hashed, the
/// default) or `v7` (rising with time, as UUIDv7 ids made at placement are).
fn backlog_ids() -> history::OrderIds {
    match std::env::var("BENCH_BACKLOG_IDS").as_deref() {
        Ok("v7") => history::OrderIds::TimeOrdered,
        _ => history::OrderIds::Random,
    }
}

/// The rate at which the count `query` reads goes from `from` to `from + backlog`, timed
/// from `started` (the process ready: the relay starts at once, and each projection's
/// catch-up applies from the store while its consumer joins the group).
async fn drain_rate(
    client: &tokio_postgres::Client,
    query: &str,
    from: i64,
    backlog: i64,
    started: Instant,
) -> anyhow::Result<f64> {
    poll_until(Duration::from_secs(900), "the whole backlog", || async {
        let row = client.query_opt(query, &[]).await?;
        let done = row.map_or(0, |row| row.get::<_, i64>(0)) - from;
        Ok((done >= backlog).then(|| started.elapsed()))
    })
    .await
    .map(|took| backlog as f64 / took.as_secs_f64())
}

/// Rebuilds `projection` (swapped in); its rate over the whole rebuild and this process's
/// peak memory meanwhile.
async fn rebuilt<P: Projection>(
    pool: &eventstore::Pool,
    projection: &P,
    events: i64,
) -> anyhow::Result<(&'static str, f64, f64)> {
    bench::process::reset_own_peak()?;
    let started = Instant::now();
    let status = rebuild::rebuild(
        pool,
        projection,
        Target::Live,
        Settings::default(),
        RebuildProgress::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .with_context(|| format!("rebuilding {}", projection.name()))?;
    anyhow::ensure!(status.replayed == events.unsigned_abs(), "replayed {status:?}");
    let rate = events as f64 / started.elapsed().as_secs_f64();
    let peak = bench::process::memory(std::process::id())
        .context("reading this process's memory from /proc")?
        .peak_rss_mib;
    Ok((projection.name(), rate, peak))
}

/// The p99 of GETs of `paths`, one at a time; each must answer 200.
async fn p99_of(
    ledger: &LedgerProcess,
    paths: impl Iterator<Item = String>,
) -> anyhow::Result<f64> {
    let mut latencies = Vec::new();
    for path in paths {
        let started = Instant::now();
        let response = ledger.http.get(ledger.url(&path)).send().await?;
        let status = response.status();
        response.bytes().await?;
        latencies.push(started.elapsed());
        anyhow::ensure!(status.is_success(), "GET {path}: {status}");
    }
    latencies.sort_unstable();
    Ok(percentile(&latencies, 0.99).as_secs_f64() * 1e3)
}

/// A figure's name and how to read it.
type Row = (&'static str, fn(&Figures) -> f64);

/// Every figure that is measured in each round (the rebuild and the backlog are measured
/// once, while preparing).
const PER_ROUND: [Row; 9] = [
    ("commands/s", |f| f.commands_per_second),
    ("command p99 ms", |f| f.command_p99_ms),
    ("commands/s ÷ pgbench", |f| f.commands_per_second / f.pgbench_tps),
    ("201 → read model p99 ms", |f| f.end_to_end_p99_ms),
    ("read models caught up after the load, s", |f| f.caught_up_seconds),
    ("GET /v1/payments/{id} p99 ms", |f| f.payments_by_order_p99_ms),
    ("GET /v1/payments?customer_id p99 ms", |f| f.payments_by_customer_p99_ms),
    ("as-of list by position p99 ms", |f| f.as_of_list_p99_ms),
    ("order as of a time p99 ms", |f| f.order_as_of_p99_ms),
];

/// Per figure, each store's ratio to the first store in every round, and their median.
fn print_medians(rounds: &[Vec<Figures>]) {
    let Some(first) = rounds.first() else { return };
    println!("\nmedian over {} rounds of the ratio to the first store, same round:", rounds.len());
    for (name, figure) in PER_ROUND {
        let cells: String = (1..first.len())
            .map(|store| {
                let mut ratios: Vec<f64> =
                    rounds.iter().map(|round| figure(&round[store]) / figure(&round[0])).collect();
                ratios.sort_by(f64::total_cmp);
                let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
                format!(" {:.2} ({}) |", ratios[ratios.len() / 2], listed.join(", "))
            })
            .collect();
        println!("| {name} |{cells}");
    }
}

fn print_table(all: &[Figures]) {
    let Some((base, rest)) = all.split_first() else { return };
    println!(
        "\n| figure | {} events |{}",
        base.events,
        rest.iter().map(|f| format!(" {} events (÷ base) |", f.events)).collect::<String>()
    );
    println!("|---|---|{}", "---|".repeat(rest.len()));
    let once: [Row; 4] = [
        ("pgbench TPS (same run)", |f| f.pgbench_tps),
        ("relay events/s through the backlog", |f| f.relay_per_second),
        ("payments projection events/s through it", |f| f.payments_per_second),
        ("notifications projection events/s through it", |f| f.notifications_per_second),
    ];
    for (name, figure) in PER_ROUND.into_iter().chain(once) {
        let cells: String = rest
            .iter()
            .map(|f| format!(" {:.1} ({:.2}) |", figure(f), figure(f) / figure(base)))
            .collect();
        println!("| {name} | {:.1} |{cells}", figure(base));
    }
    for (index, (name, _, _)) in base.rebuild.iter().enumerate() {
        let cells: String = rest
            .iter()
            .map(|f| format!(" {:.0} ev/s, {:.0} MiB |", f.rebuild[index].1, f.rebuild[index].2))
            .collect();
        println!(
            "| rebuild {name} (rate, peak RSS) | {:.0} ev/s, {:.0} MiB |{cells}",
            base.rebuild[index].1, base.rebuild[index].2
        );
    }
}
