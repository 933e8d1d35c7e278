//! Event versions: every payload ever stored still decodes, old versions upcast to the
//! current shape, the current versions round-trip, and an unknown version is an error.
//!
//! `fixtures/v1/<EventType>.json` are real version 1 payloads, copied from the `events`
//! table after a lifecycle run by the code that wrote version 1 (one order placed, declined,
//! paid in two captures, refunded in part and shipped; another placed and cancelled). They
//! are never edited: they are what production databases hold.

use std::collections::BTreeSet;
use std::path::PathBuf;

use domain::{
    Carrier, Currency, CustomerEmail, CustomerId, Event, Money, OrderCancelled, OrderFullyPaid,
    OrderId, OrderLine, OrderPlaced, OrderShipped, PaymentCaptured, PaymentFailed, PaymentId,
    PaymentInstruction, PaymentMethod, PaymentMethodId, PaymentRefunded, ProviderReference, Reason,
    RefundId, SalesChannel, Sku, TrackingNumber,
};
use eventstore::schema::{self, SchemaError};
use serde_json::{json, Value};

const EVENT_TYPES: [&str; 7] = [
    "OrderCancelled",
    "OrderFullyPaid",
    "OrderPlaced",
    "OrderShipped",
    "PaymentCaptured",
    "PaymentFailed",
    "PaymentRefunded",
];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

fn fixture(event_type: &str) -> anyhow::Result<Value> {
    let path = fixtures().join(format!("{event_type}.json"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn euros(amount_minor: i64) -> anyhow::Result<Money> {
    Ok(Money::new(amount_minor, Currency::parse("EUR")?))
}

/// What each fixture holds, written out field by field.
fn expected_v1(event_type: &str) -> anyhow::Result<Event> {
    Ok(match event_type {
        "OrderPlaced" => Event::OrderPlaced(OrderPlaced {
            order_id: OrderId::parse("0199a0a0-0000-7000-8000-00000000000a")?,
            customer_id: CustomerId::parse("cus_ada")?,
            customer_email: CustomerEmail::parse("ada@example.com")?,
            lines: vec![
                OrderLine { sku: Sku::parse("BOOK-1")?, quantity: 2, unit_price: euros(1250)? },
                OrderLine { sku: Sku::parse("PEN-7")?, quantity: 1, unit_price: euros(500)? },
            ],
            total: euros(3000)?,
            sales_channel: SalesChannel::unknown(),
            payment: None,
        }),
        "PaymentFailed" => Event::PaymentFailed(PaymentFailed {
            payment_id: PaymentId::parse("pay_declined")?,
            amount: euros(3000)?,
            reason: Reason::parse("card declined")?,
            provider_reference: None,
        }),
        "PaymentCaptured" => Event::PaymentCaptured(PaymentCaptured {
            payment_id: PaymentId::parse("pay_1")?,
            amount: euros(1000)?,
            method: PaymentMethod::parse("card")?,
            provider_reference: None,
        }),
        "OrderFullyPaid" => Event::OrderFullyPaid(OrderFullyPaid { total: euros(3000)? }),
        "PaymentRefunded" => Event::PaymentRefunded(PaymentRefunded {
            refund_id: RefundId::parse("re_1")?,
            payment_id: PaymentId::parse("pay_1")?,
            amount: euros(400)?,
            reason: Reason::parse("arrived damaged")?,
            provider_reference: None,
        }),
        "OrderShipped" => Event::OrderShipped(OrderShipped {
            carrier: Carrier::parse("DHL")?,
            tracking_number: TrackingNumber::parse("JD014600006")?,
        }),
        "OrderCancelled" => Event::OrderCancelled(OrderCancelled {
            reason: Reason::parse("customer changed their mind")?,
        }),
        other => anyhow::bail!("no expectation for {other}"),
    })
}

#[test]
fn there_is_a_v1_fixture_for_every_event_type() -> anyhow::Result<()> {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(fixtures())? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(event_type) = name.strip_suffix(".json") {
            found.insert(event_type.to_owned());
        }
    }
    let expected: BTreeSet<String> = EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(found, expected);
    Ok(())
}

#[test]
fn every_v1_fixture_decodes_to_the_current_domain_event() -> anyhow::Result<()> {
    for event_type in EVENT_TYPES {
        let decoded = schema::decode(event_type, 1, &fixture(event_type)?)?;
        assert_eq!(decoded, expected_v1(event_type)?, "{event_type} v1");
        assert_eq!(decoded.event_type(), event_type);
        // The same from the stored text, as a replay reads it.
        let text = std::fs::read_to_string(fixtures().join(format!("{event_type}.json")))?;
        assert_eq!(schema::decode_str(event_type, 1, &text)?, decoded, "{event_type} v1 text");
    }
    Ok(())
}

#[test]
fn order_placed_v1_is_upcast_with_an_unknown_sales_channel() -> anyhow::Result<()> {
    let v1 = fixture("OrderPlaced")?;
    assert!(v1.get("sales_channel").is_none(), "version 1 never recorded a channel");
    let Event::OrderPlaced(placed) = schema::decode("OrderPlaced", 1, &v1)? else {
        anyhow::bail!("OrderPlaced decoded into another event");
    };
    assert_eq!(placed.sales_channel.as_str(), "unknown");
    // The money is read exactly as stored: upcasting adds a field, it changes no amount.
    assert_eq!(placed.total, euros(3000)?);
    assert_eq!(placed.lines.len(), 2);
    Ok(())
}

#[test]
fn order_placed_v2_is_upcast_without_a_payment_instruction() -> anyhow::Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2/OrderPlaced.json");
    let v2: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let Event::OrderPlaced(placed) = schema::decode("OrderPlaced", 2, &v2)? else {
        anyhow::bail!("OrderPlaced decoded into another event");
    };
    assert_eq!(placed.sales_channel.as_str(), "web");
    assert_eq!(placed.payment, None, "version 2 never carried an instruction");
    assert_eq!(placed.total, euros(3000)?);
    Ok(())
}

#[test]
fn payment_events_v1_are_upcast_without_a_provider_reference() -> anyhow::Result<()> {
    for event_type in ["PaymentCaptured", "PaymentFailed", "PaymentRefunded"] {
        let reference = match schema::decode(event_type, 1, &fixture(event_type)?)? {
            Event::PaymentCaptured(e) => e.provider_reference,
            Event::PaymentFailed(e) => e.provider_reference,
            Event::PaymentRefunded(e) => e.provider_reference,
            other => anyhow::bail!("{event_type} decoded as {other:?}"),
        };
        assert_eq!(reference, None, "{event_type}");
    }
    Ok(())
}

#[test]
fn encode_writes_the_newest_version_of_each_event() -> anyhow::Result<()> {
    for event_type in EVENT_TYPES {
        let event = expected_v1(event_type)?;
        let encoded = schema::encode(&event)?;
        let version = match event_type {
            "OrderPlaced" => 3,
            "PaymentCaptured" | "PaymentFailed" | "PaymentRefunded" => 2,
            _ => 1,
        };
        assert_eq!(encoded.event_type, event_type);
        assert_eq!(encoded.event_version, version, "{event_type}");
        assert_eq!(schema::current_version(&event), version, "{event_type}");
    }
    Ok(())
}

#[test]
fn current_versions_round_trip() -> anyhow::Result<()> {
    for event_type in EVENT_TYPES {
        let mut event = expected_v1(event_type)?;
        let reference = Some(ProviderReference::parse("pi_3PqT1x2eZvKYlo2C")?);
        match &mut event {
            Event::OrderPlaced(placed) => {
                placed.sales_channel = SalesChannel::parse("web")?;
                placed.payment = Some(PaymentInstruction {
                    payment_method: PaymentMethodId::parse("pm_card_visa")?,
                });
            }
            Event::PaymentCaptured(e) => e.provider_reference = reference,
            Event::PaymentFailed(e) => e.provider_reference = reference,
            Event::PaymentRefunded(e) => e.provider_reference = reference,
            _ => {}
        }
        let encoded = schema::encode(&event)?;
        if event_type == "OrderPlaced" {
            assert_eq!(encoded.payload["sales_channel"], "web");
            assert_eq!(encoded.payload["payment"]["payment_method"], "pm_card_visa");
        }
        let decoded = schema::decode(encoded.event_type, encoded.event_version, &encoded.payload)?;
        assert_eq!(decoded, event, "{event_type} v{}", encoded.event_version);
        let text = encoded.payload.to_string();
        let from_text = schema::decode_str(encoded.event_type, encoded.event_version, &text)?;
        assert_eq!(from_text, event, "{event_type} v{} text", encoded.event_version);
    }
    Ok(())
}

#[test]
fn unknown_types_and_versions_are_typed_errors() -> anyhow::Result<()> {
    let placed = fixture("OrderPlaced")?;
    let captured = fixture("PaymentCaptured")?;
    for (event_type, version, payload) in [
        ("OrderPlaced", 4, &placed),
        ("OrderPlaced", 0, &placed),
        ("PaymentCaptured", 3, &captured),
        ("OrderRefunded", 1, &captured),
    ] {
        match schema::decode(event_type, version, payload) {
            Err(SchemaError::Unknown { event_type: t, event_version: v }) => {
                assert_eq!((t.as_str(), v), (event_type, version));
            }
            other => anyhow::bail!("{event_type} v{version} decoded as {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn a_payload_under_the_wrong_version_is_refused() -> anyhow::Result<()> {
    // Version 1 lacks the channel that version 2 requires…
    let v1 = fixture("OrderPlaced")?;
    assert!(matches!(
        schema::decode("OrderPlaced", 2, &v1),
        Err(SchemaError::Payload { event_version: 2, .. })
    ));
    // …and a version 2 payload labelled 1 would lose its channel, so it is refused too.
    let mut v2 = v1;
    v2["sales_channel"] = json!("web");
    assert!(matches!(
        schema::decode("OrderPlaced", 1, &v2),
        Err(SchemaError::Payload { event_version: 1, .. })
    ));
    // A version 3 payload with an instruction, labelled 2, would lose the instruction…
    let mut v3 = v2.clone();
    v3["payment"] = json!({ "payment_method": "pm_card_visa" });
    assert!(matches!(
        schema::decode("OrderPlaced", 2, &v3),
        Err(SchemaError::Payload { event_version: 2, .. })
    ));
    // …and a payment event with a provider reference, labelled 1, its reference.
    let mut captured = fixture("PaymentCaptured")?;
    captured["provider_reference"] = json!("pi_1");
    assert!(matches!(
        schema::decode("PaymentCaptured", 1, &captured),
        Err(SchemaError::Payload { event_version: 1, .. })
    ));
    // An invalid channel is as invalid in storage as in a request.
    v2["sales_channel"] = json!("Point of Sale");
    assert!(schema::decode("OrderPlaced", 2, &v2).is_err());
    Ok(())
}
