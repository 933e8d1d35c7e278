//! Projection apply throughput from a backlog, and end-to-end latency from a command's
//! 201 to its read model showing it, under a steady moderate load.
//!
//! `cargo bench -p ledger-tests --bench projections` (needs PostgreSQL and a broker;
//! `BENCH_EVENTS` sets the backlog, default 200 000; `BENCH_RATE` the steady load in
//! commands/s, default 200).

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use bench::measure::{env_or, percentile};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus::relay::RelaySettings;
use ledger_tests::{kafka_brokers, poll_until, test_kafka, TestApp, TestConsumer, TestRelay};
use projections::ProjectionKind;
use uuid::Uuid;

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
    let orders_per_transaction = 250i64;
    let started = Instant::now();
    for chunk in 0..(events / 4 / orders_per_transaction) {
        client
            .execute(
                "WITH orders AS (
                     SELECT md5('bench' || ($1::bigint * $2 + n))::uuid AS id, 'cus_' || (n % 100) AS customer
                       FROM generate_series(0, $2::bigint - 1) AS n)
                 INSERT INTO events (stream_id, stream_version, event_id, event_type, payload, metadata)
                 SELECT id, v, gen_random_uuid(), t, p, '{}'::jsonb
                   FROM orders, LATERAL (VALUES
                     (1, 'OrderPlaced', jsonb_build_object('order_id', id, 'customer_id', customer,
                         'customer_email', customer || '@example.com',
                         'lines', jsonb_build_array(jsonb_build_object('sku', 'BOOK-1', 'quantity', 2,
                             'unit_price', jsonb_build_object('amount_minor', 1250, 'currency', 'EUR'))),
                         'total', jsonb_build_object('amount_minor', 2500, 'currency', 'EUR'))),
                     (2, 'PaymentCaptured', jsonb_build_object('payment_id', 'pay_1', 'method', 'card',
                         'amount', jsonb_build_object('amount_minor', 1000, 'currency', 'EUR'))),
                     (3, 'PaymentCaptured', jsonb_build_object('payment_id', 'pay_2', 'method', 'card',
                         'amount', jsonb_build_object('amount_minor', 1500, 'currency', 'EUR'))),
                     (4, 'OrderFullyPaid', jsonb_build_object('total',
                         jsonb_build_object('amount_minor', 2500, 'currency', 'EUR')))
                   ) AS e (v, t, p)
                  ORDER BY id, v",
                &[&chunk, &orders_per_transaction],
            )
            .await?;
    }
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

/// A steady stream of captures; for each, the time from its 201 until the payments read
/// model has applied its version. One watcher polls the database every millisecond for
/// all commands still pending, so watching adds one small query per millisecond.
async fn latency() -> anyhow::Result<()> {
    let rate: u64 = env_or("BENCH_RATE", 200);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let mut orders = Vec::new();
    for _ in 0..50 {
        orders.push(app.place_order("cus_latency").await?);
    }
    // Warm-up: the consumer groups have joined and caught up before the clock runs.
    for order_id in &orders {
        app.payments(*order_id, 1).await?;
    }
    let pending: Arc<Mutex<Vec<(Uuid, i32, Instant)>>> = Arc::default();
    let sending = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (pending, sending) = (pending.clone(), sending.clone());
        let client = app.database.client().await?;
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut every_millisecond = tokio::time::interval(Duration::from_millis(1));
            loop {
                every_millisecond.tick().await;
                let waiting: Vec<(Uuid, i32, Instant)> =
                    pending.lock().map(|p| p.clone()).unwrap_or_default();
                if waiting.is_empty() && !sending.load(Ordering::SeqCst) {
                    return anyhow::Ok(latencies);
                }
                if !waiting.is_empty() {
                    let ids: Vec<Uuid> = waiting.iter().map(|(id, _, _)| *id).collect();
                    let rows = client
                        .query(
                            "SELECT stream_id, stream_version FROM projection_streams
                              WHERE projection = 'payments' AND stream_id = ANY($1)",
                            &[&ids],
                        )
                        .await?;
                    let applied: HashMap<Uuid, i32> =
                        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                    let now = Instant::now();
                    if let Ok(mut pending) = pending.lock() {
                        pending.retain(|(id, version, acknowledged)| {
                            let done = applied.get(id).is_some_and(|a| a >= version);
                            if done {
                                latencies.push(now - *acknowledged);
                            }
                            !done
                        });
                    }
                }
            }
        })
    };
    let interval = Duration::from_micros(1_000_000 / rate.max(1));
    let mut ticker = tokio::time::interval(interval);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut sent = 0usize;
    while Instant::now() < deadline {
        ticker.tick().await;
        let order_id = orders[sent % orders.len()];
        let response = app.capture(order_id, &format!("pay_{sent}"), 1).await?;
        let acknowledged = Instant::now();
        let version = TestApp::version_of(response).await?;
        if let Ok(mut pending) = pending.lock() {
            pending.push((order_id, i32::try_from(version)?, acknowledged));
        }
        sent += 1;
    }
    sending.store(false, Ordering::SeqCst);
    let mut latencies = tokio::time::timeout(Duration::from_secs(60), watcher).await???;
    latencies.sort();
    println!(
        "end-to-end (201 -> payments read model) at {rate} commands/s for {seconds}s, {sent} commands: p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}
