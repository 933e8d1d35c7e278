//! Relay throughput from a backlog, next to a raw librdkafka produce of the same messages
//! in the same run (same broker, same machine, same moment).
//!
//! `cargo bench -p ledger-tests --bench relay` (needs PostgreSQL and a broker, as the
//! tests do; `BENCH_EVENTS` sets the backlog, default 200 000; `BENCH_RELAY_BATCH` the
//! relay's batch size).

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bus::relay::RelaySettings;
use eventstore::position::{read_committed_after, CommitPosition};
use ledger_tests::{kafka_brokers, poll_until, test_kafka, TestDatabase, TestRelay};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: i64 =
        std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let database = TestDatabase::create().await?;
    let client = database.client().await?;

    // A backlog of realistic events: 4 per order, 1 000 per transaction.
    let started = Instant::now();
    ledger_tests::history::captures(&client, events).await?;
    println!("backlog: {events} events written in {:.1?}", started.elapsed());

    let brokers = kafka_brokers();
    let raw_settings = test_kafka(&brokers);
    let relay_settings = test_kafka(&brokers);
    raw_settings.ensure_topics().await?;
    relay_settings.ensure_topics().await?;

    // Baseline: the same rows, produced with the same producer settings, no checkpoints.
    let (pg, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let mut rows = Vec::new();
    let mut after = CommitPosition::default();
    loop {
        let batch = read_committed_after(&pg, after, 50_000).await?;
        let Some(last) = batch.last() else { break };
        after = last.commit;
        rows.extend(batch);
    }
    // The relay's own producer settings and encoding, the envelopes built before the clock
    // starts.
    let producer: FutureProducer =
        raw_settings.producer_config().set("message.timeout.ms", "30000").create()?;
    let topic = raw_settings.orders_topic();
    let messages = rows
        .iter()
        .map(|row| bus::envelope::encode(&row.borrow()))
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(messages.len());
    for message in &messages {
        let record = FutureRecord::to(&topic).key(&message.key).payload(&message.payload);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for delivery in deliveries {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    let raw = started.elapsed();
    producer.flush(Duration::from_secs(10))?;

    let batch_size = std::env::var("BENCH_RELAY_BATCH").ok().and_then(|v| v.parse().ok());
    let batch_size = batch_size.unwrap_or(RelaySettings::default().batch_size);
    println!("relay batch size: {batch_size}");
    let started = Instant::now();
    let relay = TestRelay::start(&database.url, &relay_settings, batch_size)?;
    poll_until(Duration::from_secs(600), "the relay to drain the backlog", || {
        let published = relay.status().published_events;
        async move { Ok((published >= events as u64).then_some(())) }
    })
    .await?;
    let relayed = started.elapsed();

    let raw_rate = rows.len() as f64 / raw.as_secs_f64();
    let relay_rate = events as f64 / relayed.as_secs_f64();
    println!("raw produce (prebuilt envelopes, no store reads, no checkpoints): {} events in {raw:.2?} = {raw_rate:.0} events/s", rows.len());
    println!("relay (gap-safe reads, envelopes, headers, checkpoints):          {events} events in {relayed:.2?} = {relay_rate:.0} events/s");
    println!("relay / raw = {:.2}", relay_rate / raw_rate);
    Ok(())
}
