//! The payment service end to end: orders placed with a payment instruction until each is
//! fully paid (placed → charged at the provider stand-in over HTTP → `PaymentCaptured` →
//! `OrderFullyPaid`), against placing the same number of plain orders through the same
//! API in the same run; then the latency from placement to fully paid under a steady
//! moderate load, measured from the events' own times.
//!
//! `cargo bench -p ledger-tests --bench payments` (`BENCH_ORDERS`, default 1000;
//! `BENCH_CONCURRENCY`, default 32; `BENCH_RATE` orders/s for the latency, default 20;
//! `BENCH_SECONDS`, default 15).

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bench::measure::{env_or, percentile};
use futures_util::stream::{self, FuturesUnordered, StreamExt};
use ledger_tests::payments::{charged_order_body, spawn_charging_with};
use ledger_tests::{expect_status, poll_until, TestApp};
use payment_standin::{Options, StandIn};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(600);

async fn place(app: &TestApp, n: usize, charged: bool) -> anyhow::Result<()> {
    let order_id = Uuid::now_v7();
    let customer = format!("cus_bench_{n}");
    let body = if charged {
        charged_order_body(order_id, &customer, "pm_card_visa")
    } else {
        TestApp::order_body(order_id, &customer)
    };
    expect_status(app.post("/v1/orders").json(&body).send().await?, 201).await?;
    Ok(())
}

async fn place_all(
    app: &TestApp,
    from: usize,
    count: usize,
    concurrency: usize,
    charged: bool,
) -> anyhow::Result<()> {
    stream::iter(from..from + count)
        .map(|n| place(app, n, charged))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn paid(app: &TestApp) -> anyhow::Result<i64> {
    let client = app.database.client().await?;
    Ok(client
        .query_one("SELECT count(*) FROM payment_processes WHERE step = 'paid'", &[])
        .await?
        .get(0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let orders: usize = env_or("BENCH_ORDERS", 1000);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 32);
    let rate: u32 = env_or("BENCH_RATE", 20);
    let seconds: u64 = env_or("BENCH_SECONDS", 15);
    let standin = StandIn::start(Options::default()).await?;
    // The ledger's default pool (the harness's 8 connections would be the bottleneck).
    let app = spawn_charging_with(&standin, |settings| {
        settings.database.max_size = ledger::DEFAULT_POOL_SIZE;
    })
    .await?;

    // Baseline: plain commands through the same API, same process, same run.
    let started = Instant::now();
    place_all(&app, 0, orders, concurrency, false).await?;
    let plain = orders as f64 / started.elapsed().as_secs_f64();

    // Charged orders: placed at the same concurrency, done when every one is paid.
    let started = Instant::now();
    place_all(&app, orders, orders, concurrency, true).await?;
    let placed_in = started.elapsed();
    poll_until(DEADLINE, "every order paid", || async {
        Ok((paid(&app).await? >= orders as i64).then_some(()))
    })
    .await?;
    let charged = orders as f64 / started.elapsed().as_secs_f64();
    assert_eq!(standin.charges().len(), orders, "one charge per order");
    // Where the time went: the first and last charge and payment after the first placement.
    let client = app.database.client().await?;
    let timeline = client
        .query_one(
            "WITH placed AS (SELECT min(recorded_at) AS at FROM events
                              WHERE event_type = 'OrderPlaced' AND payload ? 'payment'),
                  paid AS (SELECT recorded_at FROM events WHERE event_type = 'OrderFullyPaid'
                              AND recorded_at >= (SELECT at FROM placed)),
                  started AS (SELECT min(changed_at) AS first, max(changed_at) AS last
                                FROM payment_process_revisions WHERE revision = 1)
             SELECT extract(epoch FROM (SELECT first FROM started) - (SELECT at FROM placed))::float8,
                    extract(epoch FROM (SELECT last FROM started) - (SELECT at FROM placed))::float8,
                    extract(epoch FROM (SELECT min(recorded_at) FROM paid) - (SELECT at FROM placed))::float8,
                    extract(epoch FROM (SELECT max(recorded_at) FROM paid) - (SELECT at FROM placed))::float8",
            &[],
        )
        .await?;
    let (first_process, last_process, first_paid, last_paid): (f64, f64, f64, f64) =
        (timeline.get(0), timeline.get(1), timeline.get(2), timeline.get(3));
    let metrics = app.get("/metrics").send().await?.text().await?;
    let mean = |name: &str, labels: &str| {
        let value = |suffix: &str| {
            metrics
                .lines()
                .find(|line| line.starts_with(&format!("{name}_{suffix}")) && line.contains(labels))
                .and_then(|line| line.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        value("sum") / value("count") * 1e3
    };
    let provider_ms = mean("ledger_payment_provider_seconds", "call=\"charge\"");
    let capture_ms = mean("ledger_command_duration_seconds", "command=\"capture_payment\"");

    // Steady moderate load: placed → fully paid, from the events' own times.
    let before = paid(&app).await?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let count = (u64::from(rate) * seconds) as usize;
    let mut ticker = tokio::time::interval(interval);
    // Each order is sent at its tick, whether or not the ones before it were answered.
    let (mut running, mut sent) = (FuturesUnordered::new(), 0);
    while sent < count || !running.is_empty() {
        tokio::select! {
            _ = ticker.tick(), if sent < count => {
                running.push(place(&app, 2 * orders + sent, true));
                sent += 1;
            }
            Some(placed) = running.next(), if !running.is_empty() => placed?,
        }
    }
    poll_until(DEADLINE, "the steady load paid", || async {
        Ok((paid(&app).await? >= before + count as i64).then_some(()))
    })
    .await?;
    let rows = client
        .query(
            "SELECT extract(epoch FROM p.recorded_at - o.recorded_at)::float8
               FROM events o JOIN events p ON p.stream_id = o.stream_id
              WHERE o.event_type = 'OrderPlaced' AND p.event_type = 'OrderFullyPaid'
                AND o.payload ? 'payment'
              ORDER BY o.global_position DESC LIMIT $1",
            &[&(count as i64)],
        )
        .await?;
    let mut latencies: Vec<Duration> =
        rows.iter().map(|row| Duration::from_secs_f64(row.get::<_, f64>(0).max(0.0))).collect();
    latencies.sort_unstable();

    println!(
        "payment service, {orders} orders at concurrency {concurrency}, stand-in without latency"
    );
    println!("  plain orders placed (baseline): {plain:.0}/s");
    println!(
        "  charged orders placed → fully paid: {charged:.0}/s ({:.2} × plain; placing alone took {:.1} s)",
        charged / plain,
        placed_in.as_secs_f64()
    );
    println!(
        "  after the first placement: processes started {first_process:.2}–{last_process:.2} s, first paid {first_paid:.2} s, last paid {last_paid:.2} s"
    );
    println!(
        "  mean provider charge call {provider_ms:.1} ms, mean capture command {capture_ms:.1} ms"
    );
    println!(
        "  steady {rate}/s for {seconds} s, placed → fully paid: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} orders)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        latencies.len()
    );
    Ok(())
}
