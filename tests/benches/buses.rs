//! Each bus side by side, in one run: the relay draining a backlog next to a raw publish
//! of the same envelopes with the same client and settings on the same broker, and the
//! end-to-end latency from a command's 201 to the payments read model under a steady
//! moderate load.
//!
//! `cargo bench -p ledger-tests --bench buses` (needs PostgreSQL, Tansu, NATS and
//! RabbitMQ, as the tests do). `BENCH_BUSES` (default `kafka,nats,rabbitmq`),
//! `BENCH_EVENTS` (backlog, default 100 000), `BENCH_RATE` (commands/s, default 100),
//! `BENCH_SECONDS` (default 10), `BENCH_RELAY_BATCH` and `BENCH_RELAY_IN_FLIGHT` (the
//! relay's batch size and batches in flight; the defaults of `ledger serve`),
//! `BENCH_ROUNDS` (default 1): raw publish and relay alternate that many times per bus,
//! each round on channels of its own, and the table gives the median of the rounds'
//! ratios (a shared machine moves the raw rate alone by half between runs).

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bench::measure::{env_or, percentile};
use bus::envelope::{Message, HEADER_KEY};
use bus::partition::partition_of;
use bus::relay::{RelayRole, RelaySettings, RelayStatus};
use bus::Publisher;
use eventstore::position::{read_committed_after, CommitPosition};
use ledger::bus_choice::{BusKind, BusSettings};
use ledger::Role;
use ledger_tests::buses::test_bus;
use ledger_tests::{kafka_brokers, test_kafka, TestApp, TestDatabase};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

struct Row {
    bus: BusKind,
    /// Per round: raw events/s, relay events/s.
    rounds: Vec<(f64, f64)>,
    p50: Duration,
    p99: Duration,
    commands: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: i64 = env_or("BENCH_EVENTS", 100_000);
    let rate: u64 = env_or("BENCH_RATE", 100);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let round_count: usize = env_or("BENCH_ROUNDS", 1).max(1);
    let buses = std::env::var("BENCH_BUSES").unwrap_or_else(|_| "kafka,nats,rabbitmq".to_owned());
    let database = TestDatabase::create().await?;
    backlog(&database, events).await?;
    let messages = envelopes(&database).await?;

    let mut rows = Vec::new();
    for name in buses.split(',').map(str::trim) {
        let bus = <BusKind as clap::ValueEnum>::from_str(name, true)
            .map_err(|error| anyhow::anyhow!("BENCH_BUSES: {error}"))?;
        let mut rounds = Vec::new();
        for round in 1..=round_count {
            let raw = raw_publish(bus, &messages).await?;
            println!("{:<9} round {round}: the relay drains the backlog", bus.name());
            let relay = relay(bus, &database.url, events, round).await?;
            println!(
                "{:<9} round {round}: raw publish {raw:>7.0}/s  relay {relay:>7.0}/s  relay/raw {:.2}",
                bus.name(),
                relay / raw
            );
            rounds.push((raw, relay));
        }
        let app = TestApp::spawn_on(bus, &Role::ALL).await?;
        let latencies = ledger_tests::steady::latencies(&app, rate, seconds).await?;
        let row = Row {
            bus,
            rounds,
            p50: percentile(&latencies, 0.5),
            p99: percentile(&latencies, 0.99),
            commands: latencies.len(),
        };
        println!(
            "{:<9} relay/raw median {:.2}  201 -> read model at {rate}/s: p50 {:.1?} p99 {:.1?} ({} commands)",
            bus.name(), row.median_ratio(), row.p50, row.p99, row.commands
        );
        rows.push(row);
    }
    println!("\n| bus | raw publish (events/s, per round) | relay from a {events}-event backlog (events/s, per round) | relay / raw (median; per round) | 201 → read model p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        let each = |f: fn(&(f64, f64)) -> f64, precision: usize| {
            row.rounds
                .iter()
                .map(|r| format!("{:.precision$}", f(r)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "| {} | {} | {} | **{:.2}** ({}) | {:.1?} | {:.1?} |",
            row.bus.name(),
            each(|r| r.0, 0),
            each(|r| r.1, 0),
            row.median_ratio(),
            each(|r| r.1 / r.0, 2),
            row.p50,
            row.p99
        );
    }
    Ok(())
}

impl Row {
    fn median_ratio(&self) -> f64 {
        let mut ratios: Vec<f64> = self.rounds.iter().map(|(raw, relay)| relay / raw).collect();
        ratios.sort_by(f64::total_cmp);
        ratios[ratios.len() / 2]
    }
}

/// Orders of four events (placed, two captures, fully paid) written straight to the store,
/// 1 000 events a transaction.
async fn backlog(database: &TestDatabase, events: i64) -> anyhow::Result<()> {
    let client = database.client().await?;
    let started = Instant::now();
    ledger_tests::history::captures(&client, events).await?;
    println!("backlog: {events} events written in {:.1?}", started.elapsed());
    Ok(())
}

/// The backlog's envelopes, encoded as the relay encodes them.
async fn envelopes(database: &TestDatabase) -> anyhow::Result<Vec<Message>> {
    let (pg, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let mut messages = Vec::new();
    let mut after = CommitPosition::default();
    loop {
        let batch = read_committed_after(&pg, after, 50_000).await?;
        let Some(last) = batch.last() else { break };
        after = last.commit;
        for event in &batch {
            messages.push(bus::envelope::encode(&event.borrow())?);
        }
    }
    Ok(messages)
}

/// Settings of `bus` under a fresh prefix of their own.
fn fresh(bus: BusKind) -> BusSettings {
    test_bus(bus, &test_kafka(&kafka_brokers()))
}

/// Publishes `messages` with the bus's client directly (the adapter's settings: same
/// acknowledgements, headers and routing), every acknowledgement awaited; events/s.
async fn raw_publish(bus: BusKind, messages: &[Message]) -> anyhow::Result<f64> {
    let settings = fresh(bus);
    declare(&settings).await?;
    let elapsed = match bus {
        BusKind::Kafka => raw_kafka(&settings, messages).await?,
        BusKind::Nats => raw_nats(&settings, messages).await?,
        BusKind::Rabbitmq => raw_rabbitmq(&settings, messages).await?,
    };
    Ok(messages.len() as f64 / elapsed.as_secs_f64())
}

async fn raw_kafka(settings: &BusSettings, messages: &[Message]) -> anyhow::Result<Duration> {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    let producer: FutureProducer =
        settings.kafka.producer_config().set("message.timeout.ms", "30000").create()?;
    let topic = settings.kafka.orders_topic();
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(messages.len());
    for message in messages {
        let headers = message.headers.iter().fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header { key, value: Some(value.as_str()) })
        });
        let record =
            FutureRecord::to(&topic).key(&message.key).payload(&message.payload).headers(headers);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for delivery in deliveries {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    let elapsed = started.elapsed();
    producer.flush(Duration::from_secs(10))?;
    Ok(elapsed)
}

async fn raw_nats(settings: &BusSettings, messages: &[Message]) -> anyhow::Result<Duration> {
    let context = settings.nats.connect("bench-raw").await?;
    let channels = &settings.nats.channels;
    let started = Instant::now();
    // Awaited while publishing goes on, as the adapter does: the client lets 5 000 be
    // outstanding and then makes the next publish wait.
    let (acks, mut pending) =
        tokio::sync::mpsc::unbounded_channel::<async_nats::jetstream::context::PublishAckFuture>();
    let acknowledging = tokio::spawn(async move {
        while let Some(ack) = pending.recv().await {
            ack.await?;
        }
        anyhow::Ok(())
    });
    for message in messages {
        let mut headers = async_nats::HeaderMap::new();
        for (name, value) in &message.headers {
            headers.insert(*name, value.as_str());
        }
        headers.insert(HEADER_KEY, message.key.as_str());
        headers.insert("Nats-Msg-Id", message.id.to_string().as_str());
        let subject = channels.partition(partition_of(&message.key, settings.nats.partitions));
        let ack =
            context.publish_with_headers(subject, headers, message.payload.clone().into()).await?;
        acks.send(ack).map_err(|_| anyhow::anyhow!("an acknowledgement failed"))?;
    }
    drop(acks);
    acknowledging.await??;
    Ok(started.elapsed())
}

async fn raw_rabbitmq(settings: &BusSettings, messages: &[Message]) -> anyhow::Result<Duration> {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    use lapin::types::{AMQPValue, FieldTable};
    let connection =
        lapin::Connection::connect(&settings.rabbitmq.url, lapin::ConnectionProperties::default())
            .await?;
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let exchange = settings.rabbitmq.channels.orders();
    // As the adapter publishes when the settings name consumer groups: routed or refused.
    let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
    let started = Instant::now();
    let mut confirms = Vec::with_capacity(messages.len());
    for message in messages {
        let mut headers = FieldTable::default();
        for (name, value) in &message.headers {
            headers.insert((*name).into(), AMQPValue::LongString(value.as_str().into()));
        }
        headers.insert(HEADER_KEY.into(), AMQPValue::LongString(message.key.as_str().into()));
        let properties = lapin::BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(message.id.to_string().into())
            .with_content_type("application/json".into())
            .with_headers(headers);
        let routing = partition_of(&message.key, settings.rabbitmq.partitions).to_string();
        confirms.push(
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    routing.as_str().into(),
                    options,
                    &message.payload,
                    properties,
                )
                .await?,
        );
    }
    for confirm in confirms {
        confirm.await?;
    }
    Ok(started.elapsed())
}

/// The relay draining the whole backlog onto `bus` from its own checkpoint; events/s.
async fn relay(bus: BusKind, database_url: &str, events: i64, round: usize) -> anyhow::Result<f64> {
    let settings = fresh(bus);
    declare(&settings).await?;
    let defaults = RelaySettings::default();
    let relay = RelaySettings {
        // A checkpoint of the round's own: each round drains the whole backlog.
        name: format!("bench-{}-{round}", bus.name()),
        poll_interval: Duration::from_millis(50),
        batch_size: env_or("BENCH_RELAY_BATCH", defaults.batch_size),
        max_in_flight: env_or("BENCH_RELAY_IN_FLIGHT", defaults.max_in_flight),
        ..defaults
    };
    let status = watch::Sender::new(RelayStatus::default());
    let mut view = status.subscribe();
    let stop = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn({
        let (settings, url, stop) = (settings.clone(), database_url.to_owned(), stop.clone());
        async move { settings.run_relay(url, relay, status, stop).await }
    });
    // When it first read the store and first had a batch acknowledged: its start-up (the
    // store's connection, the leader's lock, the producer and the topic's metadata) and
    // the pipeline's filling, which a short backlog cannot amortise. Taken as each change
    // of its status arrives, not by polling, so that the clock stops when the relay's does.
    let mut leading = None;
    let mut first_read = None;
    let mut first_acknowledged = None;
    let drained = async {
        loop {
            let (active, reads, published) = {
                let status = view.borrow_and_update();
                (status.role == RelayRole::Active, status.reads, status.published_events)
            };
            if active {
                leading.get_or_insert_with(|| started.elapsed());
            }
            if reads > 0 {
                first_read.get_or_insert_with(|| started.elapsed());
            }
            if published > 0 {
                first_acknowledged.get_or_insert_with(|| started.elapsed());
            }
            if published >= events as u64 {
                return anyhow::Ok(());
            }
            view.changed().await?;
        }
    };
    tokio::time::timeout(Duration::from_secs(600), drained)
        .await
        .map_err(|_| anyhow::anyhow!("the relay did not drain the backlog within 600 s"))??;
    let elapsed = started.elapsed();
    println!(
        "{:<9} the relay leads after {:.0?}, has read its first batch after {:.0?}, had it acknowledged after {:.0?}, all {events} after {elapsed:.0?}",
        bus.name(),
        leading.unwrap_or_default(),
        first_read.unwrap_or_default(),
        first_acknowledged.unwrap_or_default(),
    );
    stop.cancel();
    task.await?;
    Ok(events as f64 / elapsed.as_secs_f64())
}

/// The channels of `settings` as the adapter declares them (topics; streams; exchanges and
/// every consumer group's queues), before a clock starts: both sides publish into the same
/// topology, and neither measures declaring it.
async fn declare(settings: &BusSettings) -> anyhow::Result<()> {
    let mut publisher = settings.publisher("bench-declare").await?;
    publisher.prepare().await?;
    Ok(())
}
