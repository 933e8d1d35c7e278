//! Event versions over a real store: orders whose `OrderPlaced` is version 1 (written
//! straight into the `events` table from the v1 fixture, as older releases stored them) sit
//! beside orders placed through the API at version 2. Rebuilding an order from its events,
//! deciding commands against it, and projecting it into the read models (from Kafka, and
//! from the store when a message is missing) all read version 1 as the current shape, with
//! `sales_channel: "unknown"`, and get the same money as for version 2.

use std::time::Duration;

use ledger::Role;
use ledger_tests::{expect_json, expect_status, kafka_brokers, pluck, TestApp, ORDER_TOTAL_MINOR};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use uuid::Uuid;

/// A real version 1 `OrderPlaced` payload (2 × BOOK-1 at 12.50 EUR + 1 × PEN-7 at 5.00 EUR),
/// the one the eventstore's upcasting tests decode.
const ORDER_PLACED_V1: &str = include_str!("../../eventstore/tests/fixtures/v1/OrderPlaced.json");
/// A real version 1 `PaymentCaptured` payload (`pay_1`, 10.00 EUR by card).
const PAYMENT_CAPTURED_V1: &str =
    include_str!("../../eventstore/tests/fixtures/v1/PaymentCaptured.json");

/// The v1 fixture, re-addressed to `order_id` and `customer`.
fn order_placed_v1(order_id: Uuid, customer: &str) -> anyhow::Result<Value> {
    let mut payload: Value = serde_json::from_str(ORDER_PLACED_V1)?;
    anyhow::ensure!(payload.get("sales_channel").is_none(), "the fixture is not version 1");
    payload["order_id"] = json!(order_id);
    payload["customer_id"] = json!(customer);
    payload["customer_email"] = json!(format!("{customer}@example.com"));
    Ok(payload)
}

/// Appends one version 1 event the way an older release did: a plain INSERT in its own
/// transaction (the append-only trigger allows inserts).
async fn insert_v1(
    app: &TestApp,
    order_id: Uuid,
    stream_version: i32,
    event_type: &str,
    payload: &Value,
) -> anyhow::Result<()> {
    let client = app.database.client().await?;
    let metadata = json!({ "correlation_id": "v1-fixture", "causation_id": null, "actor": null });
    ledger_tests::history::insert_event(
        &client,
        order_id,
        stream_version,
        (event_type, 1),
        payload,
        &metadata,
    )
    .await
}

/// Places an order of the standard items through the API, naming a sales channel or not.
async fn place_v2(app: &TestApp, customer: &str, channel: Option<&str>) -> anyhow::Result<Uuid> {
    let order_id = Uuid::now_v7();
    let mut body = TestApp::order_body(order_id, customer);
    if let Some(channel) = channel {
        body["sales_channel"] = json!(channel);
    }
    expect_status(app.post("/v1/orders").json(&body).send().await?, 201).await?;
    Ok(order_id)
}

fn templates(notifications: &Value) -> Vec<String> {
    pluck(notifications, "items", "template")
}

#[tokio::test]
async fn v1_and_v2_orders_rebuild_decide_and_project_alike() -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;

    // Version 1 orders, as an older release stored them: one with a capture already.
    let old_paid = Uuid::now_v7();
    insert_v1(&app, old_paid, 1, "OrderPlaced", &order_placed_v1(old_paid, "cus_v1_paid")?).await?;
    insert_v1(&app, old_paid, 2, "PaymentCaptured", &serde_json::from_str(PAYMENT_CAPTURED_V1)?)
        .await?;
    let old_cancelled = Uuid::now_v7();
    insert_v1(
        &app,
        old_cancelled,
        1,
        "OrderPlaced",
        &order_placed_v1(old_cancelled, "cus_v1_cancelled")?,
    )
    .await?;
    // Version 2 orders, placed through the API.
    let web = place_v2(&app, "cus_v2_web", Some("web")).await?;
    let default = place_v2(&app, "cus_v2_default", None).await?;

    // Commands on the version 1 orders are decided against their upcast state: 10.00 EUR of
    // 30.00 EUR was captured, so 20.00 EUR is outstanding.
    let too_much = expect_json(app.capture(old_paid, "pay_2", 2001).await?, 409).await?;
    assert_eq!(too_much["rule"], "capture_exceeds_outstanding");
    let again = expect_json(app.capture(old_paid, "pay_1", 100).await?, 409).await?;
    assert_eq!(again["rule"], "payment_already_captured", "the v1 capture is known");
    let settled = expect_json(app.capture(old_paid, "pay_2", 2000).await?, 201).await?;
    assert_eq!(
        pluck::<String>(&settled, "events", "event_type"),
        ["PaymentCaptured", "OrderFullyPaid"]
    );
    expect_status(app.refund(old_paid, "re_1", "pay_1", 500).await?, 201).await?;
    let shipped = TestApp::version_of(app.ship(old_paid).await?).await?;
    assert_eq!(shipped, 6);

    expect_status(app.fail_payment(old_cancelled, "pay_declined", 3000).await?, 201).await?;
    let cancelled = TestApp::version_of(app.cancel(old_cancelled).await?).await?;
    let web_version = TestApp::version_of(app.capture(web, "pay_1", 1000).await?).await?;

    // Rebuilt from the store: v1 orders show the channel they never recorded as unknown.
    let order = app.order(old_paid).await?;
    assert_eq!(order["sales_channel"], "unknown");
    assert_eq!(order["status"], "shipped");
    assert_eq!(order["total_minor"], ORDER_TOTAL_MINOR);
    assert_eq!(order["captured_minor"], ORDER_TOTAL_MINOR);
    assert_eq!(order["refunded_minor"], 500);
    assert_eq!(order["outstanding_minor"], 0);
    assert_eq!(order["stream_version"], 6);
    assert_eq!(pluck::<String>(&order, "payments", "payment_id"), ["pay_1", "pay_2"]);
    let order = app.order(old_cancelled).await?;
    assert_eq!(
        (&order["sales_channel"], &order["status"]),
        (&json!("unknown"), &json!("cancelled"))
    );
    assert_eq!(order["failed_payment_attempts"], 1);
    assert_eq!(app.order(web).await?["sales_channel"], "web");
    assert_eq!(app.order(default).await?["sales_channel"], "api");

    // The history keeps each event as stored, with the version it was stored at.
    let history = app.history(old_paid).await?;
    // The first two as an older release stored them; the capture and refund added since
    // are payment events of version 2, the rest of version 1.
    assert_eq!(pluck::<i64>(&history, "events", "event_version"), [1, 1, 2, 1, 2, 1]);
    assert!(history["events"][0]["data"].get("sales_channel").is_none());
    let history = app.history(web).await?;
    assert_eq!(pluck::<i64>(&history, "events", "event_version"), [3, 2]);
    assert_eq!(history["events"][0]["data"]["sales_channel"], "web");

    // The relay publishes both versions and the projections read both.
    let payments = app.payments(old_paid, 6).await?;
    assert_eq!(payments["customer_id"], "cus_v1_paid");
    assert_eq!(payments["currency"], "EUR");
    assert_eq!(payments["amount_due"], ORDER_TOTAL_MINOR);
    assert_eq!(payments["captured"], ORDER_TOTAL_MINOR);
    assert_eq!(payments["refunded"], 500);
    assert_eq!(payments["outstanding"], 0);
    assert_eq!(payments["status"], "partially_refunded");
    assert_eq!(
        pluck::<String>(&payments, "attempts", "kind"),
        ["captured", "captured", "refunded"]
    );
    let payments = app.payments(old_cancelled, cancelled).await?;
    assert_eq!(payments["amount_due"], ORDER_TOTAL_MINOR);
    assert_eq!(payments["status"], "cancelled");
    assert_eq!(pluck::<String>(&payments, "attempts", "kind"), ["failed"]);
    let payments = app.payments(web, web_version).await?;
    assert_eq!(payments["amount_due"], ORDER_TOTAL_MINOR);
    assert_eq!((&payments["captured"], &payments["outstanding"]), (&json!(1000), &json!(2000)));
    assert_eq!(payments["status"], "partially_paid");
    assert_eq!(app.payments(default, 1).await?["status"], "awaiting_payment");

    let notifications =
        app.notifications(&format!("order_id={old_paid}&min_version=6&wait_ms=5000")).await?;
    assert_eq!(
        templates(&notifications),
        [
            "order_confirmation",
            "payment_receipt",
            "payment_receipt",
            "refund_issued",
            "order_shipped"
        ]
    );
    assert_eq!(notifications["items"][0]["recipient"], "cus_v1_paid@example.com");
    assert_eq!(
        notifications["items"][0]["body"],
        "Thank you for your order of 3 items, totalling 30.00 EUR."
    );
    let notifications = app
        .notifications(&format!("order_id={old_cancelled}&min_version={cancelled}&wait_ms=5000"))
        .await?;
    assert_eq!(
        templates(&notifications),
        ["order_confirmation", "payment_failed", "order_cancelled"]
    );
    let notifications = app
        .notifications(&format!("order_id={web}&min_version={web_version}&wait_ms=5000"))
        .await?;
    assert_eq!(templates(&notifications), ["order_confirmation", "payment_receipt"]);
    assert_eq!(
        notifications["items"][0]["body"],
        "Thank you for your order of 3 items, totalling 30.00 EUR."
    );
    Ok(())
}

/// No relay: the test publishes only the capture of a v1 order, so the workers must replay
/// the v1 `OrderPlaced` from the event store before applying it.
#[tokio::test]
async fn a_v1_event_replayed_from_the_store_is_upcast() -> anyhow::Result<()> {
    let app = TestApp::spawn_with_roles(&[Role::Api, Role::Projector], &kafka_brokers()).await?;
    let order_id = Uuid::now_v7();
    insert_v1(&app, order_id, 1, "OrderPlaced", &order_placed_v1(order_id, "cus_v1_heal")?).await?;
    let version = TestApp::version_of(app.capture(order_id, "pay_1", 1200).await?).await?;
    assert_eq!(version, 2);

    let client = app.database.client().await?;
    let envelope = ledger_tests::history::stored_envelope(&client, order_id, 2).await?;
    app.kafka.ensure_topics().await?;
    let producer: FutureProducer = app.kafka.client_config().create()?;
    let key = order_id.to_string();
    let payload = serde_json::to_vec(&envelope)?;
    producer
        .send(
            FutureRecord::to(&app.kafka.orders_topic()).key(&key).payload(&payload),
            Duration::from_secs(5),
        )
        .await
        .map_err(|(e, _)| e)?;

    let payments = app.payments(order_id, version).await?;
    assert_eq!(payments["customer_id"], "cus_v1_heal");
    assert_eq!(payments["amount_due"], ORDER_TOTAL_MINOR);
    assert_eq!(payments["captured"], 1200);
    assert_eq!(payments["outstanding"], ORDER_TOTAL_MINOR - 1200);
    let notifications = app
        .notifications(&format!("order_id={order_id}&min_version={version}&wait_ms=5000"))
        .await?;
    assert_eq!(templates(&notifications), ["order_confirmation", "payment_receipt"]);
    assert_eq!(notifications["items"][0]["recipient"], "cus_v1_heal@example.com");
    Ok(())
}
