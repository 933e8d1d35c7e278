//! Back-fill for new consumers: `ledger relay republish` (the real binary) re-sends a range
//! of history to a fresh channel of its own, every event once, in order per order, with
//! the normal envelope, while the live relay keeps publishing new events to the live
//! channel from its own checkpoint, which the back-fill never touches.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ledger::bus_choice::BusKind;
use ledger::Role;
use ledger_tests::buses::BusReader;
use ledger_tests::process::ledger_binary;
use ledger_tests::TestApp;
use tokio::process::Command;
use uuid::Uuid;

/// `ledger relay republish` against the app's database and bus.
async fn republish(app: &TestApp, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let bus = &app.bus;
    Ok(Command::new(ledger_binary()?)
        .args(["relay", "republish"])
        .args(args)
        .env("DATABASE_URL", &app.database.url)
        .env("LEDGER_BUS", bus.kind.name())
        .env("LEDGER_TOPIC_PREFIX", bus.channels().prefix())
        .env("KAFKA_BROKERS", &bus.kafka.brokers)
        .env("LEDGER_NATS_URL", &bus.nats.url)
        .env("LEDGER_RABBITMQ_URL", &bus.rabbitmq.url)
        .env("LEDGER_NATS_PARTITIONS", bus.nats.partitions.to_string())
        .env("LEDGER_RABBITMQ_PARTITIONS", bus.rabbitmq.partitions.to_string())
        .envs(
            bus.rabbitmq.queue_expires.map(|expires| {
                ("LEDGER_RABBITMQ_QUEUE_EXPIRES_MS", expires.as_millis().to_string())
            }),
        )
        .kill_on_drop(true)
        .output()
        .await?)
}

async fn a_back_fill_delivers_history_once_in_order_beside_the_live_relay(
    bus: BusKind,
    events: i64,
) -> anyhow::Result<()> {
    let _heavy = ledger_tests::process::one_heavy_spec_at_a_time().await;
    let app = TestApp::spawn_on(bus, &[Role::Api, Role::Relay]).await?;
    let client = app.database.client().await?;
    ledger_tests::history::paid_orders(&client, "republish", events).await?;
    let last: i64 = client.query_one("SELECT max(global_position) FROM events", &[]).await?.get(0);
    let target = format!("{}replay.orders", app.bus.channels().prefix());
    // The new consumer is there before the back-fill starts (on RabbitMQ its queues must
    // be bound to the target exchange, or the broker drops what routes nowhere).
    let backfill = app.bus.clone().backfilling(&target);
    let group = backfill.channels().service_group("test-backfill");
    let reader = BusReader::start_in(&backfill, group);
    reader.wait_until_joined(Duration::from_secs(30)).await?;

    let live_orders = {
        let app = &app;
        async move {
            let mut orders = Vec::new();
            for _ in 0..20 {
                orders.push(app.place_order("cus_live").await?);
            }
            anyhow::Ok(orders)
        }
    };
    let to_position = last.to_string();
    let args = ["--from-position", "1", "--to-position", &to_position, "--to", &target];
    let (output, live_orders) = tokio::join!(republish(&app, &args), live_orders);
    let (output, live_orders) = (output?, live_orders?);
    assert!(
        output.status.success(),
        "{}: {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("{events} events re-sent")), "{stdout}");

    let messages = reader
        .read_until(Duration::from_secs(120), "the whole back-fill", |messages| {
            messages.len() as i64 >= events
        })
        .await?;
    let mut ids = BTreeSet::new();
    let mut versions: HashMap<Uuid, Vec<u32>> = HashMap::new();
    for message in &messages {
        let envelope = message.envelope()?;
        assert!(envelope.position <= last, "only the range: {}", envelope.position);
        assert!(ids.insert(envelope.event_id), "{} delivered twice", envelope.event_id);
        versions.entry(envelope.stream_id).or_default().push(envelope.stream_version);
    }
    assert_eq!(ids.len() as i64, events, "every event of the range");
    assert_eq!(versions.len() as i64, events / 4);
    for (order, versions) in &versions {
        assert_eq!(versions, &[1, 2, 3, 4], "{order} in order");
    }

    // The live relay went on from its own checkpoint: the new orders are on the live
    // channel, and the back-fill left no checkpoint behind.
    let live = BusReader::start(&app.bus);
    let expected: BTreeSet<Uuid> = live_orders.into_iter().collect();
    live.read_until(Duration::from_secs(60), "the live orders on the live channel", |messages| {
        let seen: BTreeSet<Uuid> =
            messages.iter().filter_map(|m| m.envelope().ok()).map(|e| e.stream_id).collect();
        expected.is_subset(&seen)
    })
    .await?;
    let names: Vec<String> = client
        .query("SELECT name FROM relay_checkpoints", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(names, [bus.name()], "only the live relay keeps a checkpoint");
    Ok(())
}

#[tokio::test]
async fn kafka_back_fill_of_100_000_events() -> anyhow::Result<()> {
    a_back_fill_delivers_history_once_in_order_beside_the_live_relay(BusKind::Kafka, 100_000).await
}

#[tokio::test]
async fn nats_back_fill() -> anyhow::Result<()> {
    a_back_fill_delivers_history_once_in_order_beside_the_live_relay(BusKind::Nats, 20_000).await
}

#[tokio::test]
async fn rabbitmq_back_fill() -> anyhow::Result<()> {
    a_back_fill_delivers_history_once_in_order_beside_the_live_relay(BusKind::Rabbitmq, 20_000)
        .await
}

#[tokio::test]
async fn a_range_that_ends_before_it_starts_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn_on(BusKind::Kafka, &[Role::Api]).await?;
    let output =
        republish(&app, &["--from-position", "10", "--to-position", "5", "--to", "x"]).await?;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--to-position"));
    Ok(())
}
