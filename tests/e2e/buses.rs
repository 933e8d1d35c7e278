//! The bus-facing specs, run on each bus (Kafka, NATS JetStream, RabbitMQ) by the same
//! code: the relay publishes every event once or more, in order per order; the
//! projections build the read models; a poison message is parked on the bus's own
//! dead-letter channel and in `dead_letters`, and the rest goes on; a restarted ledger
//! loses nothing; through a broker outage (one that also loses the broker's channels)
//! commands are accepted and everything is delivered once the broker is back.

use std::collections::BTreeSet;
use std::time::Duration;

use bus::envelope::Message;
use bus::Publisher;
use ledger::bus_choice::BusKind;
use ledger::Role;
use ledger_tests::buses::{self, BusReader};
use ledger_tests::{expect_json, poll_until, TcpCut, TestApp, TestBroker, ORDER_TOTAL_MINOR};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(30);

/// Places `n` orders and pays each in full: three events an order (placed, captured,
/// fully paid). Returns each order with its last version.
async fn place_and_pay(
    app: &TestApp,
    customer: &str,
    n: usize,
) -> anyhow::Result<Vec<(Uuid, u32)>> {
    let mut orders = Vec::with_capacity(n);
    for _ in 0..n {
        let order_id = app.place_order(customer).await?;
        let version =
            TestApp::version_of(app.capture(order_id, "pay_1", ORDER_TOTAL_MINOR).await?).await?;
        orders.push((order_id, version));
    }
    Ok(orders)
}

/// Every order is paid in the payments read model.
async fn all_paid(app: &TestApp, orders: &[(Uuid, u32)]) -> anyhow::Result<()> {
    for (order_id, version) in orders {
        let payments = app.payments(*order_id, *version).await?;
        assert_eq!(payments["status"], "paid", "{order_id}: {payments}");
        assert_eq!(payments["captured"], ORDER_TOTAL_MINOR);
    }
    Ok(())
}

async fn the_relay_publishes_every_event_in_order_per_order(bus: BusKind) -> anyhow::Result<()> {
    let app = TestApp::spawn_on(bus, &[Role::Api, Role::Relay]).await?;
    let reader = BusReader::start(&app.bus);
    let orders = place_and_pay(&app, "cus_relay", 12).await?;
    let stored = app.event_count().await?;
    assert_eq!(stored, 36);

    reader
        .read_until(DEADLINE, "every stored event on the bus", |messages| {
            let ids: BTreeSet<_> =
                messages.iter().filter_map(|m| m.envelope().ok()).map(|e| e.event_id).collect();
            ids.len() as i64 == stored
        })
        .await?;
    let by_order = reader.by_order()?;
    for (order_id, version) in &orders {
        let envelopes = &by_order[order_id];
        let versions: Vec<u32> = envelopes.iter().map(|e| e.stream_version).collect();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "{order_id} arrived out of order: {versions:?}"
        );
        let distinct: BTreeSet<u32> = versions.iter().copied().collect();
        assert_eq!(distinct, (1..=*version).collect(), "{order_id}: every version, none missing");
        // Each message carries the trace context its event was appended in.
        let history = app.history(*order_id).await?;
        for message in reader.messages().iter().filter(|m| m.key == order_id.to_string()) {
            let envelope = message.envelope()?;
            assert_eq!(envelope.stream_id, *order_id, "the key is the order id");
            let event = history["events"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|event| event["event_id"] == envelope.event_id.to_string());
            let stored = event.and_then(|event| event["metadata"]["traceparent"].as_str());
            assert!(stored.is_some_and(|value| value.len() == 55), "{event:?}");
            assert_eq!(message.traceparent.as_deref(), stored, "the traceparent header");
        }
    }
    Ok(())
}

/// A backlog the relay sends as one batch bigger than the client lets be outstanding at
/// once (JetStream's context allows 5 000 unacknowledged publishes and then makes the next
/// one wait) is published whole: acknowledgements are awaited while the batch goes out.
async fn a_batch_larger_than_the_clients_window_is_published(bus: BusKind) -> anyhow::Result<()> {
    const BACKLOG: i64 = 12_000;
    let mut app = TestApp::spawn_on(bus, &[Role::Api]).await?;
    let client = app.database.client().await?;
    ledger_tests::history::captures(&client, BACKLOG).await?;
    app.reconfigure(move |settings| {
        settings.roles = vec![Role::Api, Role::Relay];
        settings.bus.kind = bus;
        settings.relay.batch_size = BACKLOG;
    })?;
    app.restart().await?;
    poll_until(Duration::from_secs(60), "the backlog acknowledged by the broker", || async {
        let status = app.relay_status().await?;
        let published = status["store"]["published_events"].as_i64().unwrap_or_default();
        Ok((published >= BACKLOG && status["store"]["backlog"] == 0).then_some(status))
    })
    .await?;
    Ok(())
}

async fn the_projections_build_the_read_models(bus: BusKind) -> anyhow::Result<()> {
    let app = TestApp::spawn_on(bus, &Role::ALL).await?;
    let orders = place_and_pay(&app, "cus_projections", 8).await?;
    all_paid(&app, &orders).await?;
    let (order_id, version) = orders[0];
    let notifications = app
        .notifications(&format!("order_id={order_id}&min_version={version}&wait_ms=5000"))
        .await?;
    assert_eq!(
        notifications["items"].as_array().map(Vec::len),
        Some(2),
        "confirmation and receipt"
    );
    let consumers = expect_json(app.get("/v1/admin/projections").send().await?, 200).await?;
    assert!(consumers.to_string().contains("running"), "{consumers}");
    Ok(())
}

async fn a_poison_message_is_parked_on_the_bus_and_the_rest_goes_on(
    bus: BusKind,
) -> anyhow::Result<()> {
    let app = TestApp::spawn_on(bus, &Role::ALL).await?;
    let order_id = app.place_order("cus_poison").await?;
    app.payments(order_id, 1).await?;

    // Garbage under the order's key: on the order's partition, before its next event.
    let mut publisher = app.bus.publisher("test-poison").await?;
    publisher.prepare().await?;
    let garbage = Message {
        id: Uuid::new_v4(),
        key: order_id.to_string(),
        payload: b"not an envelope".to_vec(),
        headers: vec![],
    };
    publisher.publish(vec![garbage]).await?;
    let version =
        TestApp::version_of(app.capture(order_id, "pay_1", ORDER_TOTAL_MINOR).await?).await?;
    let payments = app.payments(order_id, version).await?;
    assert_eq!(payments["status"], "paid", "later events of the partition were applied");

    let dead = poll_until(DEADLINE, "two dead letters (one per projection)", || async {
        let dead = expect_json(app.get("/v1/admin/dead-letters").send().await?, 200).await?;
        Ok((dead["items"].as_array().map_or(0, Vec::len) >= 2).then_some(dead))
    })
    .await?;
    assert_eq!(dead["items"].as_array().map(Vec::len), Some(2), "one per projection: {dead}");
    assert!(
        dead["items"][0]["error"].as_str().is_some_and(|e| e.contains("undecodable")),
        "{dead}"
    );
    let parked = poll_until(DEADLINE, "both on the bus's dead-letter channel", || async {
        let parked = buses::dead_letters_on_bus(&app.bus).await?;
        Ok((parked >= 2).then_some(parked))
    })
    .await?;
    assert_eq!(parked, 2, "one per projection, nothing else");
    Ok(())
}

async fn a_restarted_ledger_loses_nothing_and_doubles_nothing(bus: BusKind) -> anyhow::Result<()> {
    let mut app = TestApp::spawn_on(bus, &Role::ALL).await?;
    let mut orders = place_and_pay(&app, "cus_restart", 5).await?;
    app.restart().await?;
    orders.extend(place_and_pay(&app, "cus_restart", 5).await?);
    app.restart().await?;
    orders.extend(place_and_pay(&app, "cus_restart", 5).await?);
    all_paid(&app, &orders).await?;
    for (order_id, _) in &orders {
        let payments = app.payments(*order_id, 1).await?;
        assert_eq!(payments["attempts"].as_array().map(Vec::len), Some(1), "{payments}");
    }
    let relay = app.relay_status().await?;
    assert_eq!(
        relay["store"]["name"],
        bus_name(bus),
        "each bus has a checkpoint of its own: {relay}"
    );
    Ok(())
}

async fn commands_are_accepted_through_a_broker_outage_and_delivered_after(
    bus: BusKind,
) -> anyhow::Result<()> {
    let _heavy = ledger_tests::process::one_heavy_spec_at_a_time().await;
    // Each broker behind a hop the test cuts. Kafka: a Tansu of the test's own, which keeps
    // its topics (a Kafka consumer of a topic its broker forgot crashes librdkafka, see
    // `TestBroker::forget_everything`). NATS and RabbitMQ: the shared broker, and the test's
    // channels deleted meanwhile, as a broker that lost them would have.
    let mut broker = None;
    let mut cut = None;
    let mut app = match bus {
        BusKind::Kafka => {
            let started = TestBroker::start().await?;
            let address = started.address();
            broker = Some(started);
            TestApp::spawn_with(move |settings| {
                settings.roles = Role::ALL.to_vec();
                settings.bus.kafka.brokers.clone_from(&address);
            })
            .await?
        }
        BusKind::Nats | BusKind::Rabbitmq => {
            let upstream = buses::broker_address(bus);
            let hop = TcpCut::to(&upstream).await?;
            let address = hop.address();
            cut = Some(hop);
            TestApp::spawn_with(move |settings| {
                settings.roles = Role::ALL.to_vec();
                settings.bus.kind = bus;
                settings.bus.nats.url = format!("nats://{address}");
                settings.bus.rabbitmq.url = format!("amqp://guest:guest@{address}/%2f");
            })
            .await?
        }
    };
    let before = place_and_pay(&app, "cus_outage", 3).await?;
    all_paid(&app, &before).await?;

    if let Some(broker) = &mut broker {
        broker.stop().await?;
    }
    if let Some(cut) = &cut {
        cut.cut();
        buses::forget_channels(&app.bus).await?;
    }
    let during = place_and_pay(&app, "cus_outage", 3).await?;
    poll_until(DEADLINE, "the relay to see the broker gone", || async {
        let relay = app.relay_status().await?;
        Ok((relay["process"]["broker"] == "unreachable").then_some(()))
    })
    .await?;

    if let Some(broker) = &mut broker {
        broker.resume().await?;
    }
    if let Some(cut) = &cut {
        cut.mend();
    }
    all_paid(&app, &during).await?;
    let after = place_and_pay(&app, "cus_outage", 3).await?;
    all_paid(&app, &after).await?;
    app.restart().await?;
    all_paid(&app, &before).await?;
    poll_until(DEADLINE, "the restarted ledger to be ready", || async {
        Ok((app.get("/readyz").send().await?.status() == 200).then_some(()))
    })
    .await?;
    Ok(())
}

fn bus_name(bus: BusKind) -> &'static str {
    bus.name()
}

on_every_bus!(
    the_relay_publishes_every_event_in_order_per_order,
    a_batch_larger_than_the_clients_window_is_published,
    the_projections_build_the_read_models,
    a_poison_message_is_parked_on_the_bus_and_the_rest_goes_on,
    a_restarted_ledger_loses_nothing_and_doubles_nothing,
    commands_are_accepted_through_a_broker_outage_and_delivered_after,
);
