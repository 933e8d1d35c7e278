//! Every committed event schema accepts real payloads: the current versions as
//! `eventstore::schema::encode` writes them for sample events of every type, the old
//! versions as production stored them (eventstore's fixtures); and the envelope and
//! headers the bus publishes validate against `envelope.json` and `headers.json`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use domain::{
    Carrier, Currency, CustomerEmail, CustomerId, Event, Money, OrderCancellationRequested,
    OrderCancelled, OrderFullyPaid, OrderId, OrderLine, OrderPlaced, OrderShipped, PaymentCaptured,
    PaymentFailed, PaymentId, PaymentInstruction, PaymentMethod, PaymentMethodId, PaymentRefunded,
    ProviderReference, Reason, RefundId, SalesChannel, Sku, TrackingNumber,
};
use eventstore::position::{CommitPosition, CommittedEvent};
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: PathBuf) -> Result<Value, Error> {
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn committed(file: &str) -> Result<Value, Error> {
    read(root().join("schemas").join(file))
}

/// The validation errors of `instance` against `schema`, formats checked.
fn errors(schema: &Value, instance: &Value) -> Result<Vec<String>, Error> {
    let validator = jsonschema::options().should_validate_formats(true).build(schema)?;
    Ok(validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect())
}

fn assert_valid(file: &str, instance: &Value) -> Result<(), Error> {
    let found = errors(&committed(file)?, instance)?;
    assert!(found.is_empty(), "{file} refuses {instance}: {found:?}");
    Ok(())
}

fn assert_invalid(file: &str, instance: &Value) -> Result<(), Error> {
    assert!(!errors(&committed(file)?, instance)?.is_empty(), "{file} accepts {instance}");
    Ok(())
}

fn euros(amount_minor: i64) -> Result<Money, Error> {
    Ok(Money::new(amount_minor, Currency::parse("EUR")?))
}

/// One event of every type, with every optional field set.
fn samples() -> Result<Vec<Event>, Error> {
    let reason = || Reason::parse("customer changed their mind");
    Ok(vec![
        Event::OrderPlaced(OrderPlaced {
            order_id: OrderId::parse("0199a0a0-0000-7000-8000-00000000000a")?,
            customer_id: CustomerId::parse("cus_ada")?,
            customer_email: CustomerEmail::parse("ada@example.com")?,
            lines: vec![OrderLine {
                sku: Sku::parse("BOOK-1")?,
                quantity: 2,
                unit_price: euros(1250)?,
            }],
            total: euros(2500)?,
            sales_channel: SalesChannel::parse("web")?,
            payment: Some(PaymentInstruction {
                payment_method: PaymentMethodId::parse("pm_card_visa")?,
            }),
        }),
        Event::PaymentCaptured(PaymentCaptured {
            payment_id: PaymentId::parse("pay_1")?,
            amount: euros(2500)?,
            method: PaymentMethod::parse("card")?,
            provider_reference: Some(ProviderReference::parse("pi_3Mtw")?),
        }),
        Event::PaymentFailed(PaymentFailed {
            payment_id: PaymentId::parse("pay_0")?,
            amount: euros(2500)?,
            reason: Reason::parse("card declined")?,
            provider_reference: None,
        }),
        Event::PaymentRefunded(PaymentRefunded {
            refund_id: RefundId::parse("re_1")?,
            payment_id: PaymentId::parse("pay_1")?,
            amount: euros(400)?,
            reason: Reason::parse("arrived damaged")?,
            provider_reference: Some(ProviderReference::parse("re_3Mtw")?),
        }),
        Event::OrderFullyPaid(OrderFullyPaid { total: euros(2500)? }),
        Event::OrderCancellationRequested(OrderCancellationRequested { reason: reason()? }),
        Event::OrderCancelled(OrderCancelled { reason: reason()? }),
        Event::OrderShipped(OrderShipped {
            carrier: Carrier::parse("DHL")?,
            tracking_number: TrackingNumber::parse("JD014600006")?,
        }),
    ])
}

/// The stored old-version payloads, as (event type, version, payload).
fn stored_old_versions() -> Result<Vec<(String, i16, Value)>, Error> {
    let fixtures = root().join("../eventstore/tests/fixtures");
    let mut found = Vec::new();
    for (dir, version) in [("v1", 1), ("v2", 2)] {
        for entry in std::fs::read_dir(fixtures.join(dir))? {
            let path = entry?.path();
            let event_type =
                path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            found.push((event_type, version, read(path)?));
        }
    }
    Ok(found)
}

#[test]
fn every_committed_event_schema_accepts_real_payloads() -> Result<(), Error> {
    let mut covered = BTreeSet::new();
    for event in samples()? {
        let stored = eventstore::schema::encode(&event)?;
        let file =
            format!("events/{}.json", contract::key(stored.event_type, stored.event_version));
        assert_valid(&file, &stored.payload)?;
        covered.insert(file);
    }
    for (event_type, version, payload) in stored_old_versions()? {
        // Only versions still read are published; the fixture must decode too.
        eventstore::schema::decode(&event_type, version, &payload)?;
        let file = format!("events/{}.json", contract::key(&event_type, version));
        assert_valid(&file, &payload)?;
        covered.insert(file);
    }
    let committed: BTreeSet<String> = std::fs::read_dir(root().join("schemas/events"))?
        .map(|entry| entry.map(|e| format!("events/{}", e.file_name().to_string_lossy())))
        .collect::<Result<_, _>>()?;
    let untested: Vec<_> = committed.difference(&covered).collect();
    assert!(untested.is_empty(), "no real payload validated against {untested:?}");
    Ok(())
}

#[test]
fn event_schemas_refuse_what_decoding_refuses() -> Result<(), Error> {
    let v1 = read(root().join("../eventstore/tests/fixtures/v1/PaymentCaptured.json"))?;
    let with = |pointer: &str, value: Value| -> Value {
        let mut payload = v1.clone();
        if let Some(slot) = payload.pointer_mut(pointer) {
            *slot = value;
        }
        payload
    };
    let file = "events/PaymentCaptured.v1.json";
    assert_valid(file, &v1)?;
    for bad in [
        with("/amount/currency", json!("eur")),
        with("/amount/currency", json!("EURO")),
        with("/amount/amount_minor", json!(12.5)),
        with("/amount/amount_minor", json!("1000")),
        with("/payment_id", json!("two words")),
        with("/payment_id", json!("")),
        with("/method", json!("x".repeat(33))),
    ] {
        assert_invalid(file, &bad)?;
        let decoded = eventstore::schema::decode("PaymentCaptured", 1, &bad);
        assert!(decoded.is_err(), "decode refuses {bad}");
    }
    // Version 1 has exactly its fields; the current version tolerates additions.
    let mut newer = v1.clone();
    newer["provider_reference"] = json!("pi_1");
    assert_invalid(file, &newer)?;
    assert_valid("events/PaymentCaptured.v2.json", &newer)?;
    assert_invalid(
        "events/OrderShipped.v1.json",
        &json!({ "carrier": "DHL", "tracking_number": "A B" }),
    )?;
    assert_invalid("events/OrderCancelled.v1.json", &json!({ "reason": "   " }))?;
    Ok(())
}

#[test]
fn published_envelopes_and_headers_validate() -> Result<(), Error> {
    let envelope_schema = committed("envelope.json")?;
    let headers_schema = committed("headers.json")?;
    let mut events: Vec<(String, i16, Value)> = Vec::new();
    for event in samples()? {
        let stored = eventstore::schema::encode(&event)?;
        events.push((stored.event_type.to_owned(), stored.event_version, stored.payload));
    }
    events.extend(stored_old_versions()?);
    for (index, (event_type, event_version, payload)) in events.into_iter().enumerate() {
        let committed_event = CommittedEvent {
            commit: CommitPosition { tx_id: 700, global_position: 41 + index as i64 },
            stream_id: uuid::Uuid::parse_str("0199a0a0-0000-7000-8000-00000000000a")?,
            stream_version: 1 + index as u32,
            event_id: uuid::Uuid::now_v7(),
            event_type: event_type.clone(),
            event_version,
            payload: payload.to_string(),
            correlation_id: (index % 2 == 0).then(|| "req-42".to_owned()),
            causation_id: None,
            traceparent: (index % 2 == 0)
                .then(|| "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
            recorded_at: Utc.with_ymd_and_hms(2025, 3, 1, 12, 30, 0).single().ok_or("time")?,
        };
        let message = bus::envelope::encode(&committed_event.borrow())?;
        let envelope: Value = serde_json::from_slice(&message.payload)?;
        let found = errors(&envelope_schema, &envelope)?;
        assert!(found.is_empty(), "envelope.json refuses {envelope}: {found:?}");
        let mut headers: serde_json::Map<String, Value> =
            message.headers.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        headers.insert(bus::envelope::HEADER_KEY.to_owned(), json!(message.key));
        let found = errors(&headers_schema, &Value::Object(headers))?;
        assert!(found.is_empty(), "headers.json refuses the headers: {found:?}");

        // The envelope's data is checked against its own type and version.
        let mut wrong = envelope.clone();
        wrong["event_version"] = json!(99);
        assert!(!errors(&envelope_schema, &wrong)?.is_empty(), "unknown version accepted");
        let mut wrong = envelope.clone();
        wrong["data"] = json!({ "unexpected": true });
        assert!(!errors(&envelope_schema, &wrong)?.is_empty(), "{event_type}: any data accepted");
    }
    Ok(())
}

#[test]
fn the_envelope_schema_names_every_field_the_bus_writes() -> Result<(), Error> {
    let envelope = bus::envelope::Envelope {
        event_id: uuid::Uuid::nil(),
        event_type: "OrderCancelled".to_owned(),
        event_version: 1,
        stream_id: uuid::Uuid::nil(),
        stream_version: 1,
        position: 1,
        recorded_at: Utc::now(),
        correlation_id: None,
        causation_id: None,
        data: json!({ "reason": "x" }),
    };
    let written: BTreeSet<String> = serde_json::to_value(&envelope)?
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    let schema = committed("envelope.json")?;
    let described: BTreeSet<String> =
        schema["properties"].as_object().into_iter().flatten().map(|(k, _)| k.clone()).collect();
    assert_eq!(written, described);
    Ok(())
}
