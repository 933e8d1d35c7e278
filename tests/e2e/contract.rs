//! The published contract, as an outside consumer meets it: a consumer that knows only the
//! committed JSON Schema of the envelope (`contract/schemas/envelope.json`, which the
//! AsyncAPI document references) validates every message on the orders channel of each
//! bus, while a full lifecycle runs — every event type, and events stored long ago at
//! versions 1 and 2 — and accepts every one.

use std::collections::BTreeSet;
use std::time::Duration;

use ledger::bus_choice::BusKind;
use ledger::Role;
use ledger_tests::buses::BusReader;
use ledger_tests::{expect_json, expect_status, TestApp, ORDER_TOTAL_MINOR};
use serde_json::{json, Value};
use uuid::Uuid;

/// The committed schema, as a consumer would fetch it: not the code that generates it.
const ENVELOPE_SCHEMA: &str = include_str!("../../contract/schemas/envelope.json");
const ORDER_PLACED_V1: &str = include_str!("../../eventstore/tests/fixtures/v1/OrderPlaced.json");
const ORDER_PLACED_V2: &str = include_str!("../../eventstore/tests/fixtures/v2/OrderPlaced.json");
const PAYMENT_CAPTURED_V1: &str =
    include_str!("../../eventstore/tests/fixtures/v1/PaymentCaptured.json");

/// Appends an event the way an older release stored it: a plain INSERT at `version`.
async fn insert_stored(
    app: &TestApp,
    order_id: Uuid,
    stream_version: i32,
    (event_type, event_version): (&str, i16),
    payload: &Value,
) -> anyhow::Result<()> {
    let client = app.database.client().await?;
    let version = (event_type, event_version);
    let metadata = serde_json::json!({});
    ledger_tests::history::insert_event(
        &client,
        order_id,
        stream_version,
        version,
        payload,
        &metadata,
    )
    .await
}

fn addressed(fixture: &str, order_id: Uuid) -> anyhow::Result<Value> {
    let mut payload: Value = serde_json::from_str(fixture)?;
    payload["order_id"] = json!(order_id);
    Ok(payload)
}

/// Every event type the domain has, through the API, and old versions from the store.
async fn full_lifecycle(app: &TestApp) -> anyhow::Result<()> {
    let old = Uuid::now_v7();
    insert_stored(app, old, 1, ("OrderPlaced", 1), &addressed(ORDER_PLACED_V1, old)?).await?;
    insert_stored(app, old, 2, ("PaymentCaptured", 1), &serde_json::from_str(PAYMENT_CAPTURED_V1)?)
        .await?;
    let older = Uuid::now_v7();
    insert_stored(app, older, 1, ("OrderPlaced", 2), &addressed(ORDER_PLACED_V2, older)?).await?;

    let shipped = app.place_order("cus_contract").await?;
    expect_status(app.fail_payment(shipped, "pay_0", 1000).await?, 201).await?;
    expect_status(app.capture(shipped, "pay_1", ORDER_TOTAL_MINOR).await?, 201).await?;
    expect_status(app.refund(shipped, "re_1", "pay_1", 500).await?, 201).await?;
    expect_status(app.ship(shipped).await?, 201).await?;

    let cancelled = app.place_order("cus_contract").await?;
    expect_status(app.cancel(cancelled).await?, 201).await?;

    // Charged through a provider: a payment instruction, a provider reference, and a
    // cancellation that asks for a refund first.
    let charged = Uuid::now_v7();
    let mut body = TestApp::order_body(charged, "cus_contract");
    body["payment"] = json!({ "payment_method": "pm_card_visa" });
    expect_status(app.post("/v1/orders").json(&body).send().await?, 201).await?;
    let capture = json!({ "payment_id": "pay_1", "amount_minor": 1000, "method": "card",
                          "provider_reference": "pi_3Contract" });
    let path = format!("/v1/orders/{charged}/payments");
    expect_status(app.post(&path).json(&capture).send().await?, 201).await?;
    let cancel = json!({ "reason": "customer changed their mind", "refund": true });
    let path = format!("/v1/orders/{charged}/cancellation");
    expect_status(app.post(&path).json(&cancel).send().await?, 201).await?;
    Ok(())
}

async fn a_consumer_of_the_published_schema_accepts_every_message(
    bus: BusKind,
) -> anyhow::Result<()> {
    let schema: Value = serde_json::from_str(ENVELOPE_SCHEMA)?;
    let validator = jsonschema::options().should_validate_formats(true).build(&schema)?;
    let app = TestApp::spawn_on(bus, &[Role::Api, Role::Relay]).await?;
    let reader = BusReader::start(&app.bus);
    full_lifecycle(&app).await?;
    let stored = app.event_count().await?;

    let messages = reader
        .read_until(Duration::from_secs(30), "every stored event on the bus", |messages| {
            let ids: BTreeSet<_> =
                messages.iter().filter_map(|m| m.envelope().ok()).map(|e| e.event_id).collect();
            ids.len() as i64 == stored
        })
        .await?;
    let mut seen = BTreeSet::new();
    for message in &messages {
        let envelope: Value = serde_json::from_slice(&message.payload)?;
        let errors: Vec<String> = validator
            .iter_errors(&envelope)
            .map(|error| format!("{error} at {}", error.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{envelope} does not match the published schema: {errors:?}");
        seen.insert(format!("{}.v{}", envelope["event_type"], envelope["event_version"]));
    }
    for expected in [
        "\"OrderPlaced\".v1",
        "\"OrderPlaced\".v2",
        "\"OrderPlaced\".v3",
        "\"PaymentCaptured\".v1",
        "\"PaymentCaptured\".v2",
        "\"PaymentFailed\".v2",
        "\"PaymentRefunded\".v2",
        "\"OrderFullyPaid\".v1",
        "\"OrderShipped\".v1",
        "\"OrderCancelled\".v1",
        "\"OrderCancellationRequested\".v1",
    ] {
        assert!(seen.contains(expected), "no {expected} among {seen:?}");
    }
    Ok(())
}

/// `/asyncapi.json` describes the channels this ledger really uses.
async fn the_asyncapi_document_names_the_channels_in_use(bus: BusKind) -> anyhow::Result<()> {
    let app = TestApp::spawn_on(bus, &[Role::Api]).await?;
    let document = expect_json(app.get("/asyncapi.json").send().await?, 200).await?;
    assert_eq!(document["asyncapi"], "3.0.0");
    let text = document.to_string();
    let channels = app.bus.channels();
    for name in [channels.orders(), channels.dead_letters(), channels.stream()] {
        assert!(text.contains(&name), "{name} is not in the document");
    }
    Ok(())
}

on_every_bus!(
    a_consumer_of_the_published_schema_accepts_every_message,
    the_asyncapi_document_names_the_channels_in_use,
);
