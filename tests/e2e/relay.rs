//! The relay publishes every committed event to Kafka at least once, in stream order per
//! order, none skipped: with transactions committing out of order, concurrent writers, a
//! relay killed mid-batch, two relays at once, and the broker going away.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bus::relay::RelayRole;
use eventstore::{schema, EventStore, Metadata, PoolSettings};
use futures_util::future::join_all;
use ledger_tests::{
    expect_status, kafka_brokers, poll_until, test_kafka, TestApp, TestBroker, TestRelay,
    TopicReader,
};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(60);

/// All event ids in the store.
async fn stored_event_ids(app: &TestApp) -> anyhow::Result<HashSet<Uuid>> {
    let client = app.database.client().await?;
    let rows = client.query("SELECT event_id FROM events", &[]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Per stream, the versions in the order they were first seen on the topic.
fn first_seen_versions(reader: &TopicReader) -> HashMap<Uuid, Vec<u32>> {
    let mut seen = HashSet::new();
    let mut versions: HashMap<Uuid, Vec<u32>> = HashMap::new();
    for message in &reader.messages {
        if seen.insert(message.envelope.event_id) {
            versions
                .entry(message.envelope.stream_id)
                .or_default()
                .push(message.envelope.stream_version);
        }
    }
    versions
}

fn assert_stream_order(reader: &TopicReader) {
    for (stream, versions) in first_seen_versions(reader) {
        let expected: Vec<u32> = (1..=versions.len() as u32).collect();
        assert_eq!(versions, expected, "stream {stream} arrived out of order");
    }
}

async fn place_orders(app: &TestApp, count: usize, customer: &str) -> anyhow::Result<Vec<Uuid>> {
    let mut ids = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(16) {
        let placed = join_all(chunk.iter().map(|_| app.place_order(customer))).await;
        for id in placed {
            ids.push(id?);
        }
    }
    Ok(ids)
}

#[tokio::test]
async fn every_event_of_concurrent_writers_arrives_in_stream_order() -> anyhow::Result<()> {
    let app = TestApp::spawn_with_relay(&kafka_brokers()).await?;
    let orders = place_orders(&app, 24, "cus_relay").await?;
    // Interleave commands across orders from many clients at once.
    let lifecycles = orders.iter().enumerate().map(|(n, order)| {
        let app = &app;
        async move {
            expect_status(app.capture(*order, "pay_1", 1000).await?, 201).await?;
            expect_status(app.fail_payment(*order, "pay_x", 50).await?, 201).await?;
            expect_status(app.capture(*order, "pay_2", 2000).await?, 201).await?;
            if n % 2 == 0 {
                expect_status(app.refund(*order, "re_1", "pay_1", 300).await?, 201).await?;
            }
            expect_status(app.ship(*order).await?, 201).await?;
            anyhow::Ok(())
        }
    });
    for outcome in join_all(lifecycles).await {
        outcome?;
    }

    let stored = stored_event_ids(&app).await?;
    let mut reader = TopicReader::new(&app.kafka).await?;
    reader
        .read_until(DEADLINE, "every stored event", |messages| {
            let seen: HashSet<Uuid> = messages.iter().map(|m| m.envelope.event_id).collect();
            stored.is_subset(&seen)
        })
        .await?;
    assert_eq!(reader.event_ids(), stored, "nothing but stored events");
    assert_stream_order(&reader);

    let message = &reader.messages[0];
    assert_eq!(message.key, message.envelope.stream_id.to_string(), "keyed by order id");
    assert_eq!(message.headers["event-type"], message.envelope.event_type);
    assert_eq!(message.headers["content-type"], "application/json");
    assert!(message.headers.contains_key("correlation-id"));
    // Each event goes out with the version it was stored at: OrderPlaced is at 3, the
    // payment events at 2.
    for message in &reader.messages {
        let version = message.envelope.event_version;
        assert_eq!(message.headers["event-version"], version.to_string());
        let expected = match message.envelope.event_type.as_str() {
            "OrderPlaced" => 3,
            "PaymentCaptured" | "PaymentFailed" | "PaymentRefunded" => 2,
            _ => 1,
        };
        assert_eq!(version, expected, "{}", message.envelope.event_type);
    }
    // One order, one partition: every message of a stream shares it.
    let mut partitions: HashMap<Uuid, HashSet<i32>> = HashMap::new();
    for message in &reader.messages {
        partitions.entry(message.envelope.stream_id).or_default().insert(message.partition);
    }
    assert!(partitions.values().all(|p| p.len() == 1));
    Ok(())
}

/// The gap test. A transaction appends (taking a low position), stays open while later
/// transactions commit, then commits: its event must still be published, and nothing
/// committed after it may overtake it.
#[tokio::test]
async fn a_late_committing_transaction_is_never_skipped() -> anyhow::Result<()> {
    let app = TestApp::spawn_with_relay(&kafka_brokers()).await?;
    let mut reader = TopicReader::new(&app.kafka).await?;
    let before = app.place_order("cus_before").await?;
    reader.read_until(DEADLINE, "the first order", |m| m.len() == 1).await?;

    let mut settings = PoolSettings::new(app.database.url.clone());
    settings.max_size = 2;
    let store = EventStore::new(eventstore::connect(&settings)?);
    let held_stream = Uuid::now_v7();
    let mut held = store.begin(&[held_stream]).await?;
    let event = schema::encode(&domain::Event::OrderCancelled(domain::OrderCancelled {
        reason: domain::Reason::parse("held open")?,
    }))?;
    let held_position = held
        .append_to_stream(held_stream, 0, std::slice::from_ref(&event), &Metadata::default())
        .await?[0];

    // A transaction that appends and rolls back leaves a hole in the positions.
    let rolled_back_stream = Uuid::now_v7();
    let mut rolled_back = store.begin(&[rolled_back_stream]).await?;
    rolled_back
        .append_to_stream(
            rolled_back_stream,
            0,
            &[schema::encode(&domain::Event::OrderCancelled(domain::OrderCancelled {
                reason: domain::Reason::parse("rolled back")?,
            }))?],
            &Metadata::default(),
        )
        .await?;
    rolled_back.rollback().await?;

    let later = place_orders(&app, 5, "cus_after").await?;
    let later_positions: Vec<i64> = {
        let client = app.database.client().await?;
        let rows = client
            .query("SELECT global_position FROM events WHERE stream_id = ANY($1)", &[&later])
            .await?;
        rows.iter().map(|r| r.get(0)).collect()
    };
    assert!(
        later_positions.iter().all(|p| *p > held_position),
        "later events have higher positions"
    );

    // The relay keeps looking, but publishes nothing past the open transaction.
    let reads_now = app.relay_status().await?["process"]["reads"].as_u64().unwrap_or_default();
    poll_until(DEADLINE, "the relay to look at the store twice more", || async {
        let reads = app.relay_status().await?["process"]["reads"].as_u64().unwrap_or_default();
        Ok((reads >= reads_now + 2).then_some(()))
    })
    .await?;
    let status = app.relay_status().await?;
    assert_eq!(
        status["process"]["published_events"], 1,
        "only the event before the open transaction"
    );
    // The five later orders wait (the held event is not visible to others yet).
    assert_eq!(status["store"]["backlog"], 5, "{status}");
    assert!(status["store"]["oldest_open_transaction_seconds"].as_f64().is_some(), "{status}");

    held.commit().await?;
    let expected: HashSet<Uuid> = stored_event_ids(&app).await?;
    assert_eq!(expected.len(), 7, "before + held + 5 later; the rolled-back one never existed");
    reader
        .read_until(DEADLINE, "every event including the late one", |messages| {
            let seen: HashSet<Uuid> = messages.iter().map(|m| m.envelope.event_id).collect();
            expected.is_subset(&seen)
        })
        .await?;
    assert!(reader.messages.iter().any(|m| m.envelope.stream_id == held_stream));
    assert!(reader.messages.iter().all(|m| m.envelope.stream_id != rolled_back_stream));
    assert_eq!(reader.messages[0].envelope.stream_id, before);
    Ok(())
}

#[tokio::test]
async fn a_relay_killed_mid_batch_resumes_from_its_checkpoint() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let kafka = test_kafka(&kafka_brokers());
    place_orders(&app, 600, "cus_kill").await?;
    let stored = stored_event_ids(&app).await?;

    let first = TestRelay::start(&app.database.url, &kafka, 50)?;
    poll_until(DEADLINE, "the first relay to publish some batches", || async {
        Ok((first.status().published_events >= 150).then_some(()))
    })
    .await?;
    first.task.abort(); // mid-batch, no goodbye: like kill -9
    let published_before_kill = first.status().published_events;
    assert!(published_before_kill < stored.len() as u64, "killed before the end");

    let second = TestRelay::start(&app.database.url, &kafka, 50)?;
    let mut reader = TopicReader::new(&kafka).await?;
    reader
        .read_until(DEADLINE, "every event after the restart", |m| {
            let seen: HashSet<Uuid> = m.iter().map(|m| m.envelope.event_id).collect();
            stored.is_subset(&seen)
        })
        .await?;
    let duplicates = reader.messages.len() - reader.event_ids().len();
    // At most the batches in flight when it died are published twice.
    let in_flight = bus::relay::DEFAULT_MAX_IN_FLIGHT * 50;
    assert!(duplicates <= in_flight, "{duplicates} duplicates, more than {in_flight}");
    assert!(second.status().published_events < stored.len() as u64, "resumed, not restarted");
    println!("relay kill: {} events, {published_before_kill} published before the kill, {duplicates} duplicates", stored.len());
    Ok(())
}

#[tokio::test]
async fn of_two_relays_one_publishes_and_the_other_takes_over() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let kafka = test_kafka(&kafka_brokers());
    let relay_a = TestRelay::start(&app.database.url, &kafka, 100)?;
    poll_until(DEADLINE, "relay A to lead", || async {
        Ok((relay_a.status().role == RelayRole::Active).then_some(()))
    })
    .await?;
    let relay_b = TestRelay::start(&app.database.url, &kafka, 100)?;
    poll_until(DEADLINE, "relay B to stand by", || async {
        Ok((relay_b.status().role == RelayRole::Standby).then_some(()))
    })
    .await?;

    place_orders(&app, 40, "cus_two_relays").await?;
    let mut reader = TopicReader::new(&kafka).await?;
    reader.read_until(DEADLINE, "the first 40 events", |m| m.len() >= 40).await?;
    assert_eq!(relay_b.status().published_events, 0, "the standby publishes nothing");
    assert_eq!(relay_a.status().published_events, 40);

    relay_a.stop.cancel();
    relay_a.task.await?;
    let stopped_at = std::time::Instant::now();
    poll_until(DEADLINE, "relay B to take over", || async {
        Ok((relay_b.status().role == RelayRole::Active).then_some(()))
    })
    .await?;
    let takeover = stopped_at.elapsed();
    assert!(takeover < Duration::from_secs(5), "took over in {takeover:?}");

    place_orders(&app, 40, "cus_two_relays").await?;
    let stored = stored_event_ids(&app).await?;
    reader
        .read_until(DEADLINE, "all 80 events", |m| {
            let seen: HashSet<Uuid> = m.iter().map(|m| m.envelope.event_id).collect();
            stored.is_subset(&seen)
        })
        .await?;
    assert_eq!(relay_b.status().published_events, 40, "B resumed from A's checkpoint");
    assert_eq!(reader.messages.len(), 80, "no duplicates after a clean hand-over");
    Ok(())
}

#[tokio::test]
async fn events_committed_while_the_broker_is_down_are_delivered_when_it_returns(
) -> anyhow::Result<()> {
    let mut broker = TestBroker::start().await?;
    let app = TestApp::spawn_with_relay(&broker.address()).await?;
    place_orders(&app, 5, "cus_outage").await?;
    let mut reader = TopicReader::new(&app.kafka).await?;
    reader.read_until(DEADLINE, "the events before the outage", |m| m.len() >= 5).await?;
    drop(reader);

    broker.stop().await?;
    let during = place_orders(&app, 20, "cus_outage").await?;
    assert_eq!(during.len(), 20, "commands are accepted while the broker is down");
    poll_until(DEADLINE, "the relay to notice the outage", || async {
        let status = app.relay_status().await?;
        Ok((status["process"]["broker"] == "unreachable").then_some(()))
    })
    .await?;

    // The broker comes back empty (nothing consumes meanwhile): the relay recreates the
    // topic and delivers what was committed during the outage.
    let down_since = std::time::Instant::now();
    broker.forget_everything().await?;
    broker.resume().await?;
    let expected: HashSet<Uuid> = during.into_iter().collect();
    let mut reader = TopicReader::new(&app.kafka).await?;
    let delivered = reader
        .read_until(DEADLINE, "the events committed during the outage", |m| {
            let seen: HashSet<Uuid> = m.iter().map(|m| m.envelope.stream_id).collect();
            expected.is_subset(&seen)
        })
        .await;
    if delivered.is_err() {
        eprintln!("relay status: {}", app.relay_status().await?);
    }
    delivered?;
    println!(
        "broker outage: 20 commands accepted while down, delivered {:?} after the broker returned",
        down_since.elapsed()
    );
    // The status turns once the batch's checkpoint is stored, a moment after its delivery.
    poll_until(DEADLINE, "the relay to report the broker reachable", || async {
        let status = app.relay_status().await?;
        Ok((status["process"]["broker"] == "reachable").then_some(()))
    })
    .await?;
    Ok(())
}

/// A backlog the planner has no statistics for yet (a young store, a burst of appends, what
/// piled up during a broker outage) is read batch after batch by walking the commit-order
/// index: not by sorting everything after the cursor, on disk, for every batch.
#[tokio::test]
async fn a_backlog_without_statistics_is_read_by_walking_the_index() -> anyhow::Result<()> {
    use eventstore::position::{append_horizon, ORDERED_READS, READ_COMMITTED_AFTER};
    let database = ledger_tests::TestDatabase::create().await?;
    let client = database.client().await?;
    ledger_tests::history::captures(&client, 60_000).await?;
    client.batch_execute(ORDERED_READS).await?;
    let horizon = append_horizon(&client).await?;
    let batch = bus::relay::RelaySettings::default().batch_size;
    let explain = format!("EXPLAIN {READ_COMMITTED_AFTER}");
    let plan: Vec<String> = client
        .query(&explain, &[&0_i64, &0_i64, &batch, &horizon])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("Index Scan using events_commit_order"), "{plan}");
    assert!(!plan.contains("Sort"), "{plan}");
    Ok(())
}
