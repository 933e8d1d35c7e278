//! The payment service across crashes and redeliveries: a `ledger serve` process running
//! the `payments` role is killed with SIGKILL mid-charge and mid-refund, and the broker
//! delivers events again; every order is still charged exactly once, each charge recorded
//! once, each refund made and recorded once.

use std::collections::HashMap;
use std::time::Duration;

use bus_kafka::KafkaSettings;
use ledger_tests::payments::{place_charged, process, process_config, spawn_charging};
use ledger_tests::process::{LedgerConfig, LedgerProcess};
use ledger_tests::{expect_json, expect_status, poll_until, TestApp, TestDatabase, TopicReader};
use payment_provider::stripe::{Stripe, StripeSettings};
use payment_provider::{ChargeOutcome, ChargeRequest, PaymentProvider};
use payment_standin::{Options, StandIn};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(60);

/// How many events of `event_type` each order has in the store.
async fn per_order(
    database: &TestDatabase,
    event_type: &str,
) -> anyhow::Result<HashMap<Uuid, i64>> {
    let client = database.client().await?;
    let rows = client
        .query(
            "SELECT stream_id, count(*) FROM events WHERE event_type = $1 GROUP BY stream_id",
            &[&event_type],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

async fn steps(database: &TestDatabase, step: &str) -> anyhow::Result<i64> {
    let client = database.client().await?;
    Ok(client
        .query_one("SELECT count(*) FROM payment_processes WHERE step = $1", &[&step])
        .await?
        .get(0))
}

#[tokio::test]
async fn killed_mid_charge_again_and_again_every_order_is_charged_exactly_once(
) -> anyhow::Result<()> {
    const ORDERS: usize = 200;
    const KILLS: usize = 6;
    let _heavy = ledger_tests::process::one_heavy_spec_at_a_time().await;
    let standin = StandIn::start(Options::default()).await?;
    // Slow enough that a kill lands between a charge and its record.
    standin.set_latency(Duration::from_millis(40));
    let database = TestDatabase::create().await?;
    let config = LedgerConfig::new(&database.url)?.roles("api,relay,projector");
    let api = LedgerProcess::start(config.clone()).await?;
    let mut payments =
        LedgerProcess::start(process_config(config.roles("payments"), &standin)).await?;

    let url = api.url("/v1/orders");
    let placing = {
        let http = api.http.clone();
        tokio::spawn(async move {
            let mut orders = Vec::with_capacity(ORDERS);
            for n in 0..ORDERS {
                orders.push(place_charged(&http, &url, &format!("cus_{n}"), "pm_card_visa").await?);
            }
            anyhow::Ok(orders)
        })
    };
    // Kill the payment process each time the provider has made another share of the
    // charges, and start it again.
    for kill in 1..=KILLS {
        let target = kill * ORDERS / (KILLS + 1);
        let reached =
            poll_until(DEADLINE, &format!("{target} charges before kill {kill}"), || async {
                Ok((standin.charges().len() >= target).then_some(()))
            })
            .await;
        payments.explain(reached)?;
        payments.kill_9().await?;
        payments.restart().await?;
    }
    let orders = placing.await??;
    let outcome = poll_until(DEADLINE, "every order paid", || async {
        Ok((steps(&database, "paid").await? == ORDERS as i64).then_some(()))
    })
    .await;
    payments.explain(outcome)?;

    let mut charges: HashMap<String, usize> = HashMap::new();
    for charge in standin.charges() {
        *charges.entry(charge.order_id.unwrap_or_default()).or_default() += 1;
    }
    let captured = per_order(&database, "PaymentCaptured").await?;
    for order_id in &orders {
        assert_eq!(charges.get(&order_id.to_string()), Some(&1), "charges of {order_id}");
        assert_eq!(captured.get(order_id), Some(&1), "PaymentCaptured of {order_id}");
    }
    assert_eq!(standin.charges().len(), ORDERS, "no charge for an order it should not have");
    assert!(per_order(&database, "PaymentFailed").await?.is_empty());
    assert!(payments.starts > KILLS as u32);
    // The kills did land mid-charge: some charges were asked for again (same key, answered
    // with the first result).
    assert!(standin.requests() > ORDERS as u64, "{} requests", standin.requests());
    Ok(())
}

#[tokio::test]
async fn a_cancellation_with_refund_survives_a_crash_between_the_refunds() -> anyhow::Result<()> {
    let _heavy = ledger_tests::process::one_heavy_spec_at_a_time().await;
    let standin = StandIn::start(Options::default()).await?;
    let database = TestDatabase::create().await?;
    let config = LedgerConfig::new(&database.url)?.roles("api,relay,projector,payments");
    let mut ledger = LedgerProcess::start(process_config(config, &standin)).await?;

    // An order paid in two captures the client took through the provider itself.
    let order_id = Uuid::now_v7();
    let body = TestApp::order_body(order_id, "cus_two_cards");
    expect_status(ledger.http.post(ledger.url("/v1/orders")).json(&body).send().await?, 201)
        .await?;
    let provider = Stripe::new(StripeSettings {
        base_url: url::Url::parse(&standin.url())?,
        api_key: standin.api_key().to_owned(),
        timeout: Duration::from_secs(5),
    })?;
    for (n, amount) in [(1, 1000), (2, 2000)] {
        let charged = provider
            .charge(&ChargeRequest {
                order_id: order_id.to_string(),
                amount_minor: amount,
                currency: "EUR".into(),
                payment_method: "pm_card_visa".into(),
                idempotency_key: format!("client-{order_id}-{n}"),
            })
            .await?;
        let ChargeOutcome::Succeeded { intent_id, .. } = charged else {
            anyhow::bail!("the stand-in did not charge: {charged:?}");
        };
        let capture = json!({
            "payment_id": format!("pay_{n}"),
            "amount_minor": amount,
            "method": "card",
            "provider_reference": intent_id,
        });
        let path = ledger.url(&format!("/v1/orders/{order_id}/payments"));
        expect_status(ledger.http.post(path).json(&capture).send().await?, 201).await?;
    }

    // Each refund takes a while at the provider: the kill lands after the first.
    standin.set_latency(Duration::from_millis(700));
    let cancel = json!({ "reason": "customer changed their mind", "refund": true });
    let path = ledger.url(&format!("/v1/orders/{order_id}/cancellation"));
    expect_json(ledger.http.post(path).json(&cancel).send().await?, 201).await?;
    poll_until(DEADLINE, "the first refund", || async {
        Ok((!standin.refunds().is_empty()).then_some(()))
    })
    .await?;
    ledger.kill_9().await?;
    assert!(standin.refunds().len() < 2, "the crash came between the refunds");
    standin.set_latency(Duration::ZERO);
    ledger.restart().await?;

    let base = ledger.url("");
    let done = poll_until(DEADLINE, "the cancellation to finish", || async {
        let state = process(&ledger.http, base.trim_end_matches('/'), order_id).await?;
        Ok(state.filter(|p| p["step"] == "cancelled"))
    })
    .await;
    ledger.explain(done)?;

    let mut refunded: Vec<(String, i64)> =
        standin.refunds().into_iter().map(|r| (r.intent_id, r.amount)).collect();
    refunded.sort_by_key(|(_, amount)| *amount);
    assert_eq!(refunded.len(), 2, "each capture refunded once: {refunded:?}");
    assert_eq!(refunded.iter().map(|(_, a)| *a).collect::<Vec<_>>(), [1000, 2000]);
    assert_ne!(refunded[0].0, refunded[1].0);
    assert_eq!(per_order(&database, "PaymentRefunded").await?.get(&order_id), Some(&2));
    assert_eq!(per_order(&database, "OrderCancelled").await?.get(&order_id), Some(&1));
    let order = ledger.get_json(&format!("/v1/orders/{order_id}")).await?;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["refunded_minor"], 3000);
    Ok(())
}

/// Sends every message of `order_id` on the orders topic again, as a broker that
/// redelivers would.
async fn redeliver(kafka: &KafkaSettings, order_id: Uuid) -> anyhow::Result<usize> {
    let mut reader = TopicReader::new(kafka).await?;
    let key = order_id.to_string();
    reader
        .read_until(DEADLINE, "the order's messages", |messages| {
            messages.iter().filter(|m| m.key == key).count() >= 3
        })
        .await?;
    let producer: FutureProducer = kafka.client_config().create()?;
    let (topic, mut sent) = (kafka.orders_topic(), 0);
    for message in reader.messages.iter().filter(|m| m.key == key) {
        let payload = serde_json::to_vec(&message.envelope)?;
        let record = FutureRecord::to(&topic).key(&key).payload(&payload);
        producer.send(record, Duration::from_secs(5)).await.map_err(|(error, _)| error)?;
        sent += 1;
    }
    Ok(sent)
}

#[tokio::test]
async fn events_the_broker_delivers_again_command_and_charge_nothing_again() -> anyhow::Result<()> {
    let standin = StandIn::start(Options::default()).await?;
    let app = spawn_charging(&standin).await?;
    let order_id =
        place_charged(&app.http, &app.url("/v1/orders"), "cus_again", "pm_card_visa").await?;
    let base = app.url("");
    let base = base.trim_end_matches('/').to_owned();
    poll_until(DEADLINE, "the order paid", || async {
        Ok(process(&app.http, &base, order_id).await?.filter(|p| p["step"] == "paid"))
    })
    .await?;
    let paid = process(&app.http, &base, order_id).await?;

    let sent = redeliver(&app.kafka, order_id).await?;
    assert!(sent >= 3);
    // A real event after the copies, on the same partition: once the service has acted on
    // it, it has read the copies before it.
    let cancel = json!({ "reason": "changed my mind", "refund": true });
    let requested =
        app.post(&format!("/v1/orders/{order_id}/cancellation")).json(&cancel).send().await?;
    expect_json(requested, 201).await?;
    poll_until(DEADLINE, "the cancellation to finish", || async {
        Ok(process(&app.http, &base, order_id).await?.filter(|p| p["step"] == "cancelled"))
    })
    .await?;

    let order = order_id.to_string();
    let charges =
        standin.charges().iter().filter(|c| c.order_id.as_deref() == Some(&order)).count();
    assert_eq!(charges, 1, "no second charge");
    assert_eq!(per_order(&app.database, "PaymentCaptured").await?.get(&order_id), Some(&1));
    assert_eq!(standin.refunds().len(), 1);
    let finished = process(&app.http, &base, order_id).await?;
    let attempts = |p: &Option<serde_json::Value>| p.as_ref().map(|p| p["attempts"].clone());
    assert_eq!(attempts(&finished), attempts(&paid), "no second attempt");
    // Each event was handled once: the inbox ends with each id once (the copies were
    // dropped), the cancellation's own event included.
    let client = app.database.client().await?;
    poll_until(DEADLINE, "the inbox to hold the order's three events", || async {
        let inbox: i64 = client
            .query_one(
                "SELECT count(*) FROM payment_process_inbox WHERE order_id = $1",
                &[&order_id],
            )
            .await?
            .get(0);
        anyhow::ensure!(inbox <= 3, "{inbox} inbox records");
        Ok((inbox == 3).then_some(()))
    })
    .await?;
    Ok(())
}
