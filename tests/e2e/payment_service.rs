//! The payment service: orders placed with a payment instruction are charged through the
//! provider (a stand-in speaking Stripe's subset over real HTTP), each outcome recorded
//! through the command layer naming its cause; soft declines are retried as new attempts,
//! failures for good cancel the order, and nothing is ever charged twice.

use std::collections::HashMap;
use std::time::Duration;

use ledger_tests::payments::{place_charged, process, spawn_charging};
use ledger_tests::{expect_json, poll_until, TestApp, ORDER_TOTAL_MINOR};
use payment_standin::{Options, Scripted, StandIn};
use serde_json::{json, Value};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(30);

/// The order's events: `(event_type, data, metadata, event_id)`.
async fn events(
    app: &TestApp,
    order_id: Uuid,
) -> anyhow::Result<Vec<(String, Value, Value, String)>> {
    let history = app.history(order_id).await?;
    Ok(history["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| {
                    (
                        e["event_type"].as_str().unwrap_or_default().to_owned(),
                        e["data"].clone(),
                        e["metadata"].clone(),
                        e["event_id"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

fn types(events: &[(String, Value, Value, String)]) -> Vec<&str> {
    events.iter().map(|(t, ..)| t.as_str()).collect()
}

/// Waits until the order's payment process reaches `step`; returns it.
async fn until_step(app: &TestApp, order_id: Uuid, step: &str) -> anyhow::Result<Value> {
    let base = app.url("");
    let base = base.trim_end_matches('/');
    poll_until(DEADLINE, &format!("the payment process of {order_id} to be {step}"), || async {
        Ok(process(&app.http, base, order_id).await?.filter(|p| p["step"] == step))
    })
    .await
}

async fn place(app: &TestApp, payment_method: &str) -> anyhow::Result<Uuid> {
    place_charged(&app.http, &app.url("/v1/orders"), "cus_pay", payment_method).await
}

fn charges_for(standin: &StandIn, order_id: Uuid) -> usize {
    let order_id = order_id.to_string();
    standin.charges().iter().filter(|c| c.order_id.as_deref() == Some(&order_id)).count()
}

#[tokio::test]
async fn an_order_placed_with_a_card_is_charged_and_fully_paid_without_a_client_call(
) -> anyhow::Result<()> {
    let standin = StandIn::start(Options::default()).await?;
    let app = spawn_charging(&standin).await?;
    let order_id = place(&app, "pm_card_visa").await?;

    let process = until_step(&app, order_id, "paid").await?;
    assert_eq!(process["attempts"], 1);

    let history = events(&app, order_id).await?;
    assert_eq!(types(&history), ["OrderPlaced", "PaymentCaptured", "OrderFullyPaid"]);
    let charges = standin.charges();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].amount, ORDER_TOTAL_MINOR);
    assert_eq!(charges[0].currency, "eur");
    assert_eq!(charges[0].order_id.as_deref(), Some(order_id.to_string().as_str()));
    // The capture names the provider's charge, is caused by the placement, shares its
    // correlation id and says who issued it.
    let (placed, captured) = (&history[0], &history[1]);
    assert_eq!(captured.1["provider_reference"], json!(charges[0].intent_id));
    assert_eq!(captured.1["amount"]["amount_minor"], ORDER_TOTAL_MINOR);
    assert_eq!(captured.2["causation_id"], json!(placed.3));
    assert_eq!(captured.2["actor"], "process:payments");
    for (event_type, _, metadata, _) in &history {
        assert_eq!(metadata["correlation_id"], placed.2["correlation_id"], "{event_type}");
    }
    // The read model sees it like any capture.
    let payments = app.payments(order_id, 3).await?;
    assert_eq!(payments["captured"], ORDER_TOTAL_MINOR);
    assert_eq!(payments["outstanding"], 0);
    Ok(())
}

#[tokio::test]
async fn soft_declines_are_tried_again_as_new_attempts_until_one_succeeds() -> anyhow::Result<()> {
    let standin = StandIn::start(Options::default()).await?;
    standin.script(
        "pm_card_retry",
        vec![Scripted::soft_decline(), Scripted::soft_decline(), Scripted::Succeed],
    );
    let app = spawn_charging(&standin).await?;
    let order_id = place(&app, "pm_card_retry").await?;

    let process = until_step(&app, order_id, "paid").await?;
    let outcomes: Vec<&str> = process["outcomes"]
        .as_array()
        .map(|o| o.iter().filter_map(|o| o["outcome"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(outcomes, ["soft_decline", "soft_decline", "succeeded"]);

    let history = events(&app, order_id).await?;
    assert_eq!(
        types(&history),
        ["OrderPlaced", "PaymentFailed", "PaymentFailed", "PaymentCaptured", "OrderFullyPaid"]
    );
    // Each attempt is its own payment, caused by what came before it.
    let payment_ids: Vec<&Value> = history[1..4].iter().map(|e| &e.1["payment_id"]).collect();
    assert_eq!(payment_ids, [&json!("charge_1"), &json!("charge_2"), &json!("charge_3")]);
    assert_eq!(history[2].2["causation_id"], json!(history[1].3));
    assert_eq!(history[3].2["causation_id"], json!(history[2].3));
    assert!(history[1].1["reason"].as_str().is_some_and(|r| r.contains("insufficient_funds")));
    // Three intents under three keys, one charge.
    let keys: std::collections::HashSet<_> =
        standin.intents().into_iter().map(|i| i.idempotency_key).collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(charges_for(&standin, order_id), 1);
    Ok(())
}

#[tokio::test]
async fn declined_to_the_limit_the_order_is_cancelled_and_the_customer_told() -> anyhow::Result<()>
{
    let standin = StandIn::start(Options::default()).await?;
    standin.script("pm_card_broke", vec![Scripted::soft_decline(); 3]);
    let app = spawn_charging(&standin).await?;
    let soft = place(&app, "pm_card_broke").await?;
    let hard = place(&app, "pm_card_chargeDeclined").await?;
    let unknown = place(&app, "pm_card_nobodyKnowsThisOne").await?;

    for order_id in [soft, hard, unknown] {
        until_step(&app, order_id, "cancelled").await?;
    }
    let soft_history = events(&app, soft).await?;
    assert_eq!(
        types(&soft_history),
        ["OrderPlaced", "PaymentFailed", "PaymentFailed", "PaymentFailed", "OrderCancelled"]
    );
    // A hard decline (and a payment method the provider does not know) ends at once.
    for order_id in [hard, unknown] {
        assert_eq!(
            types(&events(&app, order_id).await?),
            ["OrderPlaced", "PaymentFailed", "OrderCancelled"]
        );
    }
    let order = app.order(soft).await?;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancellation_reason"], "payment_failed");
    // The compensation names the last failure as its cause.
    assert_eq!(soft_history[4].2["causation_id"], json!(soft_history[3].3));
    assert_eq!(standin.charges().len(), 0);
    // The customer hears of it through the normal notifications.
    poll_until(DEADLINE, "the cancellation notification", || async {
        let notifications = app.notifications(&format!("order_id={soft}")).await?;
        let templates: Vec<String> = notifications["items"]
            .as_array()
            .map(|items| {
                items.iter().filter_map(|n| n["template"].as_str().map(str::to_owned)).collect()
            })
            .unwrap_or_default();
        Ok(templates.iter().any(|t| t == "order_cancelled").then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_charge_whose_answer_is_lost_is_found_again_with_the_same_key() -> anyhow::Result<()> {
    let standin = StandIn::start(Options::default()).await?;
    // The provider charges, then answers only after the ledger has given up waiting.
    standin.script("pm_card_slow", vec![Scripted::ChargeThenStall(Duration::from_secs(3))]);
    let app = spawn_charging(&standin).await?;
    let order_id = place(&app, "pm_card_slow").await?;

    until_step(&app, order_id, "paid").await?;
    assert_eq!(charges_for(&standin, order_id), 1, "exactly one charge at the provider");
    assert_eq!(standin.intents().len(), 1, "the retry found the first intent");
    let captured = events(&app, order_id).await?;
    assert_eq!(types(&captured), ["OrderPlaced", "PaymentCaptured", "OrderFullyPaid"]);
    assert_eq!(captured[1].1["provider_reference"], json!(standin.charges()[0].intent_id));
    Ok(())
}

#[tokio::test]
async fn while_the_provider_is_down_charges_wait_and_none_is_made_twice() -> anyhow::Result<()> {
    let standin = StandIn::start(Options::default()).await?;
    standin.set_outage(true);
    let app = spawn_charging(&standin).await?;
    let mut orders = Vec::new();
    for _ in 0..5 {
        orders.push(place(&app, "pm_card_visa").await?);
    }
    let base = app.url("");
    let base = base.trim_end_matches('/').to_owned();
    let down_since = std::time::Instant::now();
    // The ledger keeps asking while the provider answers 503, and says why it waits.
    poll_until(DEADLINE, "the service to report the outage", || async {
        let waiting = process(&app.http, &base, orders[0]).await?;
        Ok(waiting.filter(|p| p["last_error"].is_string() && standin.requests() >= 10))
    })
    .await?;
    // The outage lasts ten seconds in all; nothing is charged meanwhile.
    let outage = Duration::from_secs(10);
    poll_until(outage * 2, "ten seconds of outage", || async {
        anyhow::ensure!(standin.charges().is_empty(), "charged while the provider was down");
        Ok((down_since.elapsed() >= outage).then_some(()))
    })
    .await?;
    standin.set_outage(false);

    for order_id in &orders {
        until_step(&app, *order_id, "paid").await?;
        assert_eq!(charges_for(&standin, *order_id), 1);
        assert_eq!(
            types(&events(&app, *order_id).await?),
            ["OrderPlaced", "PaymentCaptured", "OrderFullyPaid"]
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_instruction_the_ledger_cannot_use_is_refused_with_the_field_named() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    let mut card_number = TestApp::order_body(Uuid::now_v7(), "cus_bad");
    card_number["payment"] = json!({ "payment_method": "4242424242424242" });
    let mut free = TestApp::order_body(Uuid::now_v7(), "cus_bad");
    free["items"] = json!([{ "sku": "GIFT", "quantity": 1, "unit_price_minor": 0 }]);
    free["payment"] = json!({ "payment_method": "pm_card_visa" });
    for (body, field) in [(card_number, "payment.payment_method"), (free, "payment")] {
        let problem = expect_json(app.post("/v1/orders").json(&body).send().await?, 422).await?;
        assert_eq!(problem["code"], "validation_failed");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(fields, [field], "{problem}");
    }
    assert_eq!(app.event_count().await?, 0, "nothing was written");
    Ok(())
}

#[tokio::test]
async fn a_cancellation_with_refund_gives_back_the_charge_then_cancels() -> anyhow::Result<()> {
    let standin = StandIn::start(Options::default()).await?;
    let app = spawn_charging(&standin).await?;
    let order_id = place(&app, "pm_card_visa").await?;
    until_step(&app, order_id, "paid").await?;

    // Without a refund an order holding money cannot be cancelled…
    let refused = app.cancel(order_id).await?;
    assert_eq!(refused.status(), 409);
    // …with one, the payment service gives it back first.
    let body = json!({ "reason": "customer changed their mind", "refund": true });
    let requested =
        app.post(&format!("/v1/orders/{order_id}/cancellation")).json(&body).send().await?;
    expect_json(requested, 201).await?;
    assert_eq!(app.order(order_id).await?["status"], "cancelling");
    until_step(&app, order_id, "cancelled").await?;

    let history = events(&app, order_id).await?;
    assert_eq!(
        types(&history)[3..],
        ["OrderCancellationRequested", "PaymentRefunded", "OrderCancelled"]
    );
    let refunds = standin.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].amount, ORDER_TOTAL_MINOR);
    assert_eq!(history[4].1["provider_reference"], json!(refunds[0].id));
    assert_eq!(history[4].2["causation_id"], json!(history[3].3));
    assert_eq!(history[5].2["causation_id"], json!(history[4].3));
    assert_eq!(history[5].1["reason"], "customer changed their mind");
    Ok(())
}

#[tokio::test]
async fn the_payment_process_answers_as_of_a_point_in_time() -> anyhow::Result<()> {
    let standin = StandIn::start(Options::default()).await?;
    standin.script("pm_card_once_more", vec![Scripted::soft_decline(), Scripted::Succeed]);
    let app = spawn_charging(&standin).await?;
    let order_id = place(&app, "pm_card_once_more").await?;
    until_step(&app, order_id, "paid").await?;
    let history = events(&app, order_id).await?;
    let raw = app.history(order_id).await?;
    let positions: HashMap<&str, i64> = raw["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| Some((e["event_type"].as_str()?, e["position"].as_i64()?)))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(history.len(), 4);
    // As of the failure, one attempt had been made and the process was still charging.
    let at_failure = expect_json(
        app.get(&format!(
            "/v1/orders/{order_id}/payment-process?at_position={}",
            positions["PaymentFailed"]
        ))
        .send()
        .await?,
        200,
    )
    .await?;
    assert_eq!(at_failure["step"], "charging");
    assert_eq!(at_failure["outcomes"].as_array().map(Vec::len), Some(1));
    // Before the order existed there was no process.
    let before = app
        .get(&format!("/v1/orders/{order_id}/payment-process?as_of=2020-01-01T00:00:00Z"))
        .send()
        .await?;
    assert_eq!(before.status(), 404);
    Ok(())
}
