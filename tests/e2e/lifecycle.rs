//! A whole order, over HTTP: place → partial capture → capture the rest (fully paid) →
//! refund part → ship → refund after shipping. History and state agree with every step.

use ledger_tests::{expect_json, expect_status, pluck, TestApp, ORDER_TOTAL_MINOR};
use serde_json::Value;

fn event_types(history: &Value) -> Vec<String> {
    pluck(history, "events", "event_type")
}

#[tokio::test]
async fn an_order_from_placement_to_shipping_and_a_late_refund() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_lifecycle").await?;

    let first = expect_json(app.capture(order_id, "pay_1", 1000).await?, 201).await?;
    assert_eq!(first["stream_version"], 2);
    assert_eq!(first["events"][0]["event_type"], "PaymentCaptured");
    let early = expect_json(app.ship(order_id).await?, 409).await?;
    assert_eq!(early["rule"], "not_fully_paid");

    let too_much =
        expect_json(app.capture(order_id, "pay_2", ORDER_TOTAL_MINOR).await?, 409).await?;
    assert_eq!(too_much["rule"], "capture_exceeds_outstanding");

    let rest =
        expect_json(app.capture(order_id, "pay_2", ORDER_TOTAL_MINOR - 1000).await?, 201).await?;
    let types: Vec<String> = pluck(&rest, "events", "event_type");
    assert_eq!(
        types,
        ["PaymentCaptured", "OrderFullyPaid"],
        "settling capture emits OrderFullyPaid"
    );
    assert_eq!(rest["stream_version"], 4);

    let refund = expect_json(app.refund(order_id, "re_1", "pay_1", 400).await?, 201).await?;
    assert_eq!(refund["stream_version"], 5);
    let over = expect_json(app.refund(order_id, "re_2", "pay_1", 601).await?, 409).await?;
    assert_eq!(over["rule"], "refund_exceeds_refundable");

    let shipped = expect_json(app.ship(order_id).await?, 201).await?;
    assert_eq!(shipped["events"][0]["event_type"], "OrderShipped");
    let cancel = expect_json(app.cancel(order_id).await?, 409).await?;
    assert_eq!(cancel["rule"], "order_shipped");
    expect_status(app.refund(order_id, "re_3", "pay_2", ORDER_TOTAL_MINOR - 1000).await?, 201)
        .await?;

    let history = app.history(order_id).await?;
    assert_eq!(
        event_types(&history),
        [
            "OrderPlaced",
            "PaymentCaptured",
            "PaymentCaptured",
            "OrderFullyPaid",
            "PaymentRefunded",
            "OrderShipped",
            "PaymentRefunded"
        ]
    );
    let versions: Vec<i64> = pluck(&history, "events", "stream_version");
    assert_eq!(versions, (1..=7).collect::<Vec<_>>(), "versions have no gap");
    let positions: Vec<i64> = pluck(&history, "events", "position");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "positions increase: {positions:?}");

    let order = app.order(order_id).await?;
    assert_eq!(order["status"], "shipped");
    assert_eq!(order["total_minor"], ORDER_TOTAL_MINOR);
    assert_eq!(order["captured_minor"], ORDER_TOTAL_MINOR);
    assert_eq!(order["refunded_minor"], 400 + ORDER_TOTAL_MINOR - 1000);
    assert_eq!(order["outstanding_minor"], 0, "refunds do not make the customer owe again");
    assert_eq!(order["fully_paid"], true);
    assert_eq!(order["stream_version"], 7);
    assert_eq!(order["shipment"]["carrier"], "DHL");
    assert_eq!(order["payments"][0]["payment_id"], "pay_1");
    assert_eq!(order["payments"][0]["refunded_minor"], 400);
    Ok(())
}

#[tokio::test]
async fn cancel_needs_captured_money_refunded_first() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_cancel").await?;
    expect_status(app.fail_payment(order_id, "pay_declined", 3000).await?, 201).await?;
    expect_status(app.capture(order_id, "pay_1", 700).await?, 201).await?;

    let refused = expect_json(app.cancel(order_id).await?, 409).await?;
    assert_eq!(refused["rule"], "captured_funds_not_refunded");

    expect_status(app.refund(order_id, "re_1", "pay_1", 700).await?, 201).await?;
    expect_status(app.cancel(order_id).await?, 201).await?;
    let after = expect_json(app.capture(order_id, "pay_2", 100).await?, 409).await?;
    assert_eq!(after["rule"], "order_cancelled");

    let order = app.order(order_id).await?;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["failed_payment_attempts"], 1);
    assert_eq!(order["cancellation_reason"], "customer changed their mind");
    Ok(())
}

#[tokio::test]
async fn the_correlation_id_reaches_event_metadata() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = uuid::Uuid::now_v7();
    let response = app
        .post("/v1/orders")
        .header("x-correlation-id", "checkout-7f3a")
        .json(&TestApp::order_body(order_id, "cus_corr"))
        .send()
        .await?;
    assert_eq!(response.headers()["x-correlation-id"], "checkout-7f3a");
    expect_status(response, 201).await?;

    let history = app.history(order_id).await?;
    let metadata = &history["events"][0]["metadata"];
    assert_eq!(metadata["correlation_id"], "checkout-7f3a");
    assert_eq!(metadata["command"], "place_order");
    assert!(metadata["causation_id"].is_string());
    Ok(())
}

#[tokio::test]
async fn unknown_orders_are_not_found() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let unknown = uuid::Uuid::now_v7();
    let missing = expect_json(app.get(&format!("/v1/orders/{unknown}")).send().await?, 404).await?;
    assert_eq!(missing["code"], "not_found");
    expect_status(app.get(&format!("/v1/orders/{unknown}/events")).send().await?, 404).await?;
    let capture = expect_json(app.capture(unknown, "pay_1", 100).await?, 404).await?;
    assert_eq!(capture["code"], "not_found");
    assert_eq!(app.event_count().await?, 0);
    Ok(())
}

#[tokio::test]
async fn placing_the_same_order_id_twice_is_a_rule_violation() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = uuid::Uuid::now_v7();
    let body = TestApp::order_body(order_id, "cus_twice");
    expect_status(app.post("/v1/orders").json(&body).send().await?, 201).await?;
    let again = expect_json(app.post("/v1/orders").json(&body).send().await?, 409).await?;
    assert_eq!(again["rule"], "order_already_placed");
    assert_eq!(app.event_count().await?, 1);
    Ok(())
}
