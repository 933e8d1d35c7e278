//! Projection workers consume the topic into the payments and notifications read models:
//! values match what the commands imply, duplicates change nothing, a lost message heals
//! from the event store, a poison message is parked and the partition moves on, a restart
//! loses nothing and doubles nothing, and reads can wait for their own writes.

use std::collections::HashMap;
use std::time::Duration;

use bus_kafka::KafkaSettings;
use ledger::Role;
use ledger_tests::{
    expect_json, expect_status, kafka_brokers, pluck, poll_until, TestApp, TopicReader,
    ORDER_TOTAL_MINOR,
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(60);

/// What the commands of an order imply for its payments row, computed by the test.
#[derive(Default, Clone, Debug)]
struct Expected {
    due: i64,
    captured: i64,
    refunded: i64,
    cancelled: bool,
    /// The order's version: what read-your-writes waits for.
    version: u32,
    /// The version of the order's last event that changed its payments.
    payments_version: u32,
    attempts: usize,
    notifications: usize,
}

impl Expected {
    fn status(&self) -> &'static str {
        if self.cancelled {
            "cancelled"
        } else if self.refunded > 0 && self.refunded == self.captured {
            "refunded"
        } else if self.refunded > 0 {
            "partially_refunded"
        } else if self.captured >= self.due {
            "paid"
        } else if self.captured > 0 {
            "partially_paid"
        } else {
            "awaiting_payment"
        }
    }
}

async fn place(
    app: &TestApp,
    customer: &str,
    currency: &str,
    price: i64,
) -> anyhow::Result<(Uuid, Expected)> {
    let order_id = Uuid::now_v7();
    let body = json!({
        "order_id": order_id, "customer_id": customer, "customer_email": format!("{customer}@example.com"),
        "currency": currency, "items": [{ "sku": "SKU-1", "quantity": 2, "unit_price_minor": price }]
    });
    let version = TestApp::version_of(app.post("/v1/orders").json(&body).send().await?).await?;
    Ok((
        order_id,
        Expected {
            due: 2 * price,
            version,
            payments_version: version,
            notifications: 1,
            ..Expected::default()
        },
    ))
}

async fn wait_for_applied(
    app: &TestApp,
    order_id: Uuid,
    expected: &Expected,
) -> anyhow::Result<Value> {
    let payments = app.payments(order_id, expected.version).await?;
    app.notifications(&format!(
        "order_id={order_id}&min_version={}&wait_ms=5000",
        expected.version
    ))
    .await?;
    Ok(payments)
}

fn assert_payments(payments: &Value, expected: &Expected) {
    assert_eq!(payments["amount_due"], expected.due, "{payments}");
    assert_eq!(payments["captured"], expected.captured, "{payments}");
    assert_eq!(payments["refunded"], expected.refunded, "{payments}");
    assert_eq!(payments["outstanding"], expected.due - expected.captured, "{payments}");
    assert_eq!(payments["status"], expected.status(), "{payments}");
    assert_eq!(payments["stream_version"], expected.payments_version, "{payments}");
    assert_eq!(
        payments["attempts"].as_array().map(Vec::len),
        Some(expected.attempts),
        "{payments}"
    );
}

#[tokio::test]
async fn read_models_match_what_the_commands_imply() -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let mut orders: Vec<(Uuid, &str, &str, Expected)> = Vec::new();
    for (customer, currency, price) in [
        ("cus_ada", "EUR", 1250),
        ("cus_ada", "EUR", 400),
        ("cus_bob", "USD", 999),
        ("cus_bob", "EUR", 5000),
        ("cus_cy", "JPY", 700),
    ] {
        let (id, expected) = place(&app, customer, currency, price).await?;
        orders.push((id, customer, currency, expected));
    }
    // A script of commands over the orders; each updates the expectation by hand.
    // `version` is the command's answer: its last event's. A capture that settles an order
    // also records `OrderFullyPaid`, which does not change its payments.
    let bump = |expected: &mut Expected, version: u32, attempt: bool, notify: bool| {
        expected.version = version;
        expected.payments_version = version;
        expected.attempts += usize::from(attempt);
        expected.notifications += usize::from(notify);
    };
    {
        let (id, _, _, e) = &mut orders[0];
        let v = TestApp::version_of(app.capture(*id, "pay_1", 1000).await?).await?;
        e.captured += 1000;
        bump(e, v, true, true);
        let v = TestApp::version_of(app.fail_payment(*id, "pay_2", 1500).await?).await?;
        bump(e, v, true, true);
        let v = TestApp::version_of(app.capture(*id, "pay_2", 1500).await?).await?;
        e.captured += 1500; // settles the order: PaymentCaptured + OrderFullyPaid (no message)
        bump(e, v, true, true);
        e.payments_version = v - 1;
        let v = TestApp::version_of(app.refund(*id, "re_1", "pay_1", 250).await?).await?;
        e.refunded += 250;
        bump(e, v, true, true);
        let v = TestApp::version_of(app.ship(*id).await?).await?;
        let unchanged = e.payments_version;
        bump(e, v, false, true);
        e.payments_version = unchanged;
    }
    {
        let (id, _, _, e) = &mut orders[1];
        let v = TestApp::version_of(app.cancel(*id).await?).await?;
        e.cancelled = true;
        bump(e, v, false, true);
    }
    {
        let (id, _, _, e) = &mut orders[2];
        let v = TestApp::version_of(app.capture(*id, "pay_1", 1998).await?).await?;
        e.captured += 1998;
        bump(e, v, true, true);
        let v = TestApp::version_of(app.refund(*id, "re_1", "pay_1", 1998).await?).await?;
        e.refunded += 1998;
        bump(e, v, true, true);
    }
    {
        let (id, _, _, e) = &mut orders[3];
        let v = TestApp::version_of(app.capture(*id, "pay_1", 100).await?).await?;
        e.captured += 100;
        bump(e, v, true, true);
    }

    for (id, _, _, expected) in &orders {
        let payments = wait_for_applied(&app, *id, expected).await?;
        assert_payments(&payments, expected);
        let notifications = app.notifications(&format!("order_id={id}")).await?;
        assert_eq!(
            notifications["items"].as_array().map(Vec::len),
            Some(expected.notifications),
            "{notifications}"
        );
    }

    // The first order's messages, rendered with the currency's minor units.
    let first = app.notifications(&format!("order_id={}", orders[0].0)).await?;
    let templates: Vec<String> = pluck(&first, "items", "template");
    assert_eq!(
        templates,
        [
            "order_confirmation",
            "payment_receipt",
            "payment_failed",
            "payment_receipt",
            "refund_issued",
            "order_shipped"
        ]
    );
    assert!(first["items"][0]["body"].as_str().is_some_and(|b| b.contains("25.00 EUR")), "{first}");
    assert_eq!(first["items"][0]["recipient"], "cus_ada@example.com");
    assert_eq!(first["items"][0]["status"], "pending");
    let yen = app.notifications(&format!("order_id={}", orders[4].0)).await?;
    assert!(yen["items"][0]["body"].as_str().is_some_and(|b| b.contains("1400 JPY")), "{yen}");

    // Per customer and currency, the totals of their orders.
    let balance = expect_json(app.get("/v1/customers/cus_bob/balance").send().await?, 200).await?;
    let mut by_currency: HashMap<&str, (i64, i64, i64, i64, i64)> = HashMap::new();
    for (_, customer, currency, e) in &orders {
        if *customer == "cus_bob" {
            let entry = by_currency.entry(*currency).or_default();
            entry.0 += e.due;
            entry.1 += e.captured;
            entry.2 += e.refunded;
            entry.3 += if e.cancelled { 0 } else { e.due - e.captured };
            entry.4 += 1;
        }
    }
    for entry in balance["balances"].as_array().into_iter().flatten() {
        let currency = entry["currency"].as_str().unwrap_or_default();
        let (due, captured, refunded, outstanding, count) = by_currency[currency];
        assert_eq!(
            (entry["amount_due"].as_i64(), entry["captured"].as_i64(), entry["refunded"].as_i64()),
            (Some(due), Some(captured), Some(refunded)),
            "{balance}"
        );
        assert_eq!(entry["outstanding"].as_i64(), Some(outstanding), "{balance}");
        assert_eq!(entry["orders"].as_i64(), Some(count), "{balance}");
    }
    assert_eq!(balance["balances"].as_array().map(Vec::len), Some(2));

    // Lists filter and page with an opaque cursor.
    let ada =
        expect_json(app.get("/v1/payments?customer_id=cus_ada&limit=1").send().await?, 200).await?;
    assert_eq!(ada["items"][0]["order_id"], orders[0].0.to_string());
    let cursor = ada["next_cursor"].as_str().unwrap_or_default().to_owned();
    let next = expect_json(
        app.get(&format!("/v1/payments?customer_id=cus_ada&limit=1&cursor={cursor}"))
            .send()
            .await?,
        200,
    )
    .await?;
    assert_eq!(next["items"][0]["order_id"], orders[1].0.to_string());
    // The newest first, paged the other way, ends where the oldest first began.
    let mut newest_first = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = expect_json(
            app.get(&format!("/v1/payments?customer_id=cus_ada&limit=1&order=newest{cursor}"))
                .send()
                .await?,
            200,
        )
        .await?;
        newest_first.extend(page["items"].as_array().into_iter().flatten().cloned());
        let Some(next) = page["next_cursor"].as_str() else { break };
        cursor = format!("&cursor={next}");
    }
    let oldest_first =
        expect_json(app.get("/v1/payments?customer_id=cus_ada").send().await?, 200).await?;
    let mut reversed: Vec<Value> = oldest_first["items"].as_array().cloned().unwrap_or_default();
    reversed.reverse();
    assert!(reversed.len() >= 2, "{oldest_first}");
    assert_eq!(newest_first, reversed);
    let cancelled =
        expect_json(app.get("/v1/payments?status=cancelled").send().await?, 200).await?;
    assert_eq!(cancelled["items"].as_array().map(Vec::len), Some(1));
    for bad in ["status=lost", "limit=0", "limit=501", "cursor=zz", "colour=red", "order=up"] {
        let problem =
            expect_json(app.get(&format!("/v1/payments?{bad}")).send().await?, 422).await?;
        assert_eq!(problem["code"], "validation_failed", "{bad}");
    }
    Ok(())
}

#[tokio::test]
async fn reads_wait_for_their_own_writes_or_answer_projection_lagging() -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let order_id = app.place_order("cus_ryw").await?;
    let version = TestApp::version_of(app.capture(order_id, "pay_1", 500).await?).await?;
    let payments = app.payments(order_id, version).await?;
    assert_eq!(payments["captured"], 500);
    // A version the store does not hold is the client's mistake, said at once.
    let too_far = app
        .get(&format!("/v1/payments/{order_id}?min_version={}&wait_ms=5000", version + 5))
        .send()
        .await?;
    let conflict = expect_json(too_far, 409).await?;
    assert_eq!(conflict["code"], "version_conflict", "{conflict}");
    assert_eq!(conflict["actual_version"], version, "{conflict}");
    let unknown = app.get(&format!("/v1/payments/{}?min_version=1", uuid::Uuid::now_v7()));
    assert_eq!(expect_json(unknown.send().await?, 404).await?["code"], "not_found");
    Ok(())
}

async fn raw_producer(kafka: &KafkaSettings) -> anyhow::Result<FutureProducer> {
    Ok(kafka.client_config().create()?)
}

#[tokio::test]
async fn the_same_events_delivered_twice_change_nothing() -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let mut last = Vec::new();
    for n in 0..4 {
        let order_id = app.place_order("cus_twice").await?;
        let version = TestApp::version_of(app.capture(order_id, "pay_1", 1000 + n).await?).await?;
        last.push((order_id, version));
    }
    let mut before = Vec::new();
    for (order_id, version) in &last {
        before.push(app.payments(*order_id, *version).await?);
        app.notifications(&format!("order_id={order_id}&min_version={version}&wait_ms=5000"))
            .await?;
    }
    let notifications_before = app.notifications("customer_id=cus_twice").await?;

    // Produce every message of the topic a second time.
    let mut reader = TopicReader::new(&app.kafka).await?;
    reader.read_until(DEADLINE, "all 8 events", |m| m.len() >= 8).await?;
    let producer = raw_producer(&app.kafka).await?;
    let topic = app.kafka.orders_topic();
    for message in &reader.messages {
        let payload = serde_json::to_vec(&message.envelope)?;
        producer
            .send(
                FutureRecord::to(&topic).key(&message.key).payload(&payload),
                Duration::from_secs(5),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    poll_until(DEADLINE, "both workers to see the duplicates", || async {
        let status = expect_json(app.get("/v1/admin/projections").send().await?, 200).await?;
        let duplicates: Vec<u64> = pluck(&status, "workers", "duplicates");
        Ok((duplicates.len() == 2 && duplicates.iter().all(|d| *d >= 8)).then_some(()))
    })
    .await?;

    for ((order_id, version), before) in last.iter().zip(before) {
        assert_eq!(app.payments(*order_id, *version).await?, before);
    }
    assert_eq!(app.notifications("customer_id=cus_twice").await?, notifications_before);
    Ok(())
}

/// The relay is not running here: the test publishes the envelopes itself and leaves one
/// out, as if it were lost.
#[tokio::test]
async fn a_lost_message_heals_from_the_event_store() -> anyhow::Result<()> {
    let app = TestApp::spawn_with_roles(&[Role::Api, Role::Projector], &kafka_brokers()).await?;
    let order_id = app.place_order("cus_lost").await?;
    expect_status(app.capture(order_id, "pay_1", 1000).await?, 201).await?;
    let version = TestApp::version_of(app.capture(order_id, "pay_2", 500).await?).await?;

    let client = app.database.client().await?;
    let rows = client
        .query("SELECT event_id, event_type, stream_version, global_position, recorded_at, payload, event_version FROM events WHERE stream_id = $1 ORDER BY stream_version", &[&order_id])
        .await?;
    let producer = raw_producer(&app.kafka).await?;
    app.kafka.ensure_topics().await?;
    for row in rows.iter().filter(|row| row.get::<_, i32>(2) != 2) {
        let envelope = json!({
            "event_id": row.get::<_, Uuid>(0), "event_type": row.get::<_, String>(1), "event_version": row.get::<_, i16>(6),
            "stream_id": order_id, "stream_version": row.get::<_, i32>(2), "position": row.get::<_, i64>(3),
            "recorded_at": row.get::<_, chrono::DateTime<chrono::Utc>>(4), "correlation_id": null, "causation_id": null,
            "data": row.get::<_, Value>(5),
        });
        let payload = serde_json::to_vec(&envelope)?;
        let key = order_id.to_string();
        producer
            .send(
                FutureRecord::to(&app.kafka.orders_topic()).key(&key).payload(&payload),
                Duration::from_secs(5),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    let payments = app.payments(order_id, version).await?;
    assert_eq!(payments["captured"], 1500, "the skipped capture was applied from the store");
    assert_eq!(payments["attempts"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[tokio::test]
async fn a_poison_message_is_parked_and_the_partition_moves_on() -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let order_id = app.place_order("cus_poison").await?;
    app.payments(order_id, 1).await?;

    // Garbage under the order's key lands on the order's partition, before its next event.
    let producer = raw_producer(&app.kafka).await?;
    let key = order_id.to_string();
    producer
        .send(
            FutureRecord::to(&app.kafka.orders_topic()).key(&key).payload("not an envelope"),
            Duration::from_secs(5),
        )
        .await
        .map_err(|(e, _)| e)?;
    let version =
        TestApp::version_of(app.capture(order_id, "pay_1", ORDER_TOTAL_MINOR).await?).await?;

    let payments = app.payments(order_id, version).await?;
    assert_eq!(payments["status"], "paid", "later events on the partition were applied");
    let dead = poll_until(DEADLINE, "two dead letters (one per projection)", || async {
        let dead = expect_json(app.get("/v1/admin/dead-letters").send().await?, 200).await?;
        Ok((dead["items"].as_array().map(Vec::len) == Some(2)).then_some(dead))
    })
    .await?;
    let letter = &dead["items"][0];
    assert_eq!(letter["attempts"], 3);
    assert!(letter["error"].as_str().is_some_and(|e| e.contains("undecodable")), "{letter}");
    Ok(())
}

#[tokio::test]
async fn a_restarted_worker_loses_nothing_and_doubles_nothing() -> anyhow::Result<()> {
    let mut app = TestApp::spawn_all(&kafka_brokers()).await?;
    let mut orders = Vec::new();
    for round in 0..3 {
        for _ in 0..10 {
            let order_id = app.place_order("cus_restart").await?;
            let version = TestApp::version_of(app.capture(order_id, "pay_1", 700).await?).await?;
            orders.push((order_id, version));
        }
        if round < 2 {
            app.restart().await?; // stops the workers mid-stream (gracefully) and starts new ones
        }
    }
    for (order_id, version) in &orders {
        let payments = app.payments(*order_id, *version).await?;
        app.notifications(&format!("order_id={order_id}&min_version={version}&wait_ms=5000"))
            .await?;
        assert_eq!(payments["captured"], 700);
        assert_eq!(payments["attempts"].as_array().map(Vec::len), Some(1));
    }
    let all = app.notifications("customer_id=cus_restart&limit=500").await?;
    assert_eq!(
        all["items"].as_array().map(Vec::len),
        Some(orders.len() * 2),
        "one confirmation and one receipt each"
    );
    Ok(())
}

#[tokio::test]
async fn a_parked_message_can_be_re_driven_once_it_can_be_applied() -> anyhow::Result<()> {
    // No workers: the test parks an order's first event itself, as a worker would have.
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_redrive").await?;
    let client = app.database.client().await?;
    let envelope = ledger_tests::history::stored_envelope(&client, order_id, 1).await?;
    let payload = serde_json::to_vec(&envelope)?;
    let ids = client
        .query(
            "INSERT INTO dead_letters (projection, topic, partition, \"offset\", key, payload, error, attempts)
             VALUES ('payments', 't', 0, 0, $1, $2, 'simulated', 3), ('payments', 't', 0, 1, $1, 'junk', 'simulated', 3)
             RETURNING id",
            &[&order_id.to_string(), &payload],
        )
        .await?;
    let id: i64 =
        ids.first().map(|row| row.get(0)).ok_or_else(|| anyhow::anyhow!("no dead letter id"))?;
    expect_status(app.get(&format!("/v1/payments/{order_id}")).send().await?, 404).await?;

    let redriven =
        expect_json(app.post(&format!("/v1/admin/dead-letters/{id}/redrive")).send().await?, 200)
            .await?;
    assert_eq!(redriven["applied"], true);
    let payments = app.payments(order_id, 1).await?;
    assert_eq!(payments["amount_due"], ORDER_TOTAL_MINOR);

    let again =
        expect_json(app.post(&format!("/v1/admin/dead-letters/{id}/redrive")).send().await?, 409)
            .await?;
    assert_eq!(again["code"], "redrive_failed");
    let junk = expect_json(
        app.post(&format!("/v1/admin/dead-letters/{}/redrive", id + 1)).send().await?,
        409,
    )
    .await?;
    assert_eq!(junk["code"], "redrive_failed");
    expect_status(app.post("/v1/admin/dead-letters/999999/redrive").send().await?, 404).await?;
    let listed = expect_json(app.get("/v1/admin/dead-letters").send().await?, 200).await?;
    let redriven_flags: Vec<bool> = listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| !d["redriven_at"].is_null())
        .collect();
    assert_eq!(redriven_flags, [false, true], "newest first: the junk is still parked");
    Ok(())
}
