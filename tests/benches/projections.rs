//! Projection apply throughput from a backlog, and end-to-end latency from a command's
//! 201 to its read model showing it, under a steady moderate load.
//!
//! `cargo bench -p ledger-tests --bench projections` (needs PostgreSQL and a broker;
//! `BENCH_EVENTS` sets the backlog, default 200 000; `BENCH_RATE` the steady load in
//! commands/s, default 200).

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use bench::measure::{env_or, percentile};
use std::time::{Duration, Instant};

use bus::relay::RelaySettings;
use ledger_tests::{kafka_brokers, poll_until, test_kafka, TestApp, TestConsumer, TestRelay};
use projections::ProjectionKind;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    backlog().await?;
    latency().await
}

/// Orders of four events each (placed, two captures, fully paid), written straight to the
/// store, published by the relay, then consumed by both projections at once.
async fn backlog() -> anyhow::Result<()> {
    let events: i64 = env_or("BENCH_EVENTS", 200_000);
    let app = TestApp::spawn().await?;
    let client = app.database.client().await?;
    let started = Instant::now();
    ledger_tests::history::paid_orders(&client, "bench", events).await?;
    println!(
        "backlog: {events} events ({} orders) written in {:.1?}",
        events / 4,
        started.elapsed()
    );

    let kafka = test_kafka(&kafka_brokers());
    let started = Instant::now();
    let relay = TestRelay::start(&app.database.url, &kafka, RelaySettings::default().batch_size)?;
    poll_until(Duration::from_secs(600), "the relay to publish the backlog", || {
        let published = relay.status().published_events;
        async move { Ok((published >= events as u64).then_some(())) }
    })
    .await?;
    println!("relay: published {events} events in {:.2?}", started.elapsed());

    let mut settings = eventstore::PoolSettings::new(app.database.url.clone());
    settings.max_size = 4;
    let pool = eventstore::connect(&settings)?;
    let started = Instant::now();
    let consumers = ProjectionKind::ALL.map(|kind| TestConsumer::start(kind, pool.clone(), &kafka));
    let mut finished = [None, None];
    poll_until(Duration::from_secs(600), "both projections to apply the backlog", || {
        for (slot, consumer) in finished.iter_mut().zip(&consumers) {
            if slot.is_none() && consumer.stats().applied_events >= events as u64 {
                *slot = Some(started.elapsed());
            }
        }
        let done = finished.iter().all(Option::is_some);
        async move { Ok(done.then_some(())) }
    })
    .await?;
    for (kind, took) in ProjectionKind::ALL.iter().zip(finished.iter().flatten()) {
        println!(
            "{kind} projection: applied {events} events in {took:.2?} = {:.0} events/s (both projections running at once)",
            events as f64 / took.as_secs_f64()
        );
    }
    Ok(())
}

/// The end-to-end latency under a steady load (`ledger_tests::steady`).
async fn latency() -> anyhow::Result<()> {
    let rate: u64 = env_or("BENCH_RATE", 200);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let latencies = ledger_tests::steady::latencies(&app, rate, seconds).await?;
    println!(
        "end-to-end (201 -> payments read model) at {rate} commands/s for {seconds}s, {} commands: p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}
