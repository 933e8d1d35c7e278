//! `Idempotency-Key`: a retry gets the first response byte for byte and appends nothing,
//! also under concurrency and across a restart; reusing a key for another request is 422.

use futures_util::future::join_all;
use ledger_tests::{expect_json, expect_status, TestApp};
use uuid::Uuid;

async fn place_with_key(
    app: &TestApp,
    key: &str,
    body: &serde_json::Value,
) -> anyhow::Result<reqwest::Response> {
    Ok(app.post("/v1/orders").header("idempotency-key", key).json(body).send().await?)
}

#[tokio::test]
async fn a_retried_command_replays_the_first_response_and_appends_nothing() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    // No order_id in the body: the server picks one, and the retry must get the same.
    let mut body = TestApp::order_body(Uuid::nil(), "cus_retry");
    body.as_object_mut().map(|o| o.remove("order_id"));

    let first = place_with_key(&app, "key-retry-1", &body).await?;
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = expect_status(first, 201).await?;
    let second = place_with_key(&app, "key-retry-1", &body).await?;
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second = expect_status(second, 201).await?;

    assert_eq!(first, second, "byte-for-byte replay");
    assert_eq!(app.event_count().await?, 1);
    Ok(())
}

#[tokio::test]
async fn thirty_two_concurrent_requests_with_one_key_append_once() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_concurrent_key").await?;
    let body = serde_json::json!({ "payment_id": "pay_1", "amount_minor": 1200, "method": "card" });

    let responses = join_all((0..32).map(|_| {
        app.post(&format!("/v1/orders/{order_id}/payments"))
            .header("idempotency-key", "key-concurrent")
            .json(&body)
            .send()
    }))
    .await;
    let mut bodies = Vec::new();
    for response in responses {
        bodies.push(expect_status(response?, 201).await?);
    }
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]), "every caller sees the one response");
    assert_eq!(app.event_count().await?, 2, "placed + one capture");
    assert_eq!(app.order(order_id).await?["captured_minor"], 1200);
    Ok(())
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let body = TestApp::order_body(Uuid::now_v7(), "cus_reuse");
    expect_status(place_with_key(&app, "key-reuse", &body).await?, 201).await?;

    let other_body = TestApp::order_body(Uuid::now_v7(), "cus_reuse");
    let problem = expect_json(place_with_key(&app, "key-reuse", &other_body).await?, 422).await?;
    assert_eq!(problem["code"], "idempotency_key_reused");

    let order_id =
        body["order_id"].as_str().and_then(|id| Uuid::parse_str(id).ok()).unwrap_or_default();
    let other_path = app
        .post(&format!("/v1/orders/{order_id}/payments"))
        .header("idempotency-key", "key-reuse")
        .json(&serde_json::json!({ "payment_id": "pay_1", "amount_minor": 100, "method": "card" }))
        .send()
        .await?;
    assert_eq!(expect_json(other_path, 422).await?["code"], "idempotency_key_reused");
    assert_eq!(app.event_count().await?, 1);
    Ok(())
}

#[tokio::test]
async fn the_replay_survives_a_restart() -> anyhow::Result<()> {
    let mut app = TestApp::spawn().await?;
    let body = TestApp::order_body(Uuid::now_v7(), "cus_restart");
    let first = expect_status(place_with_key(&app, "key-restart", &body).await?, 201).await?;

    app.restart().await?;

    let second = expect_status(place_with_key(&app, "key-restart", &body).await?, 201).await?;
    assert_eq!(first, second);
    assert_eq!(app.event_count().await?, 1);
    Ok(())
}

#[tokio::test]
async fn a_refused_command_does_not_use_up_its_key() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_refused_key").await?;
    let ship = |app: &TestApp| {
        app.post(&format!("/v1/orders/{order_id}/shipment"))
            .header("idempotency-key", "key-ship")
            .json(&serde_json::json!({ "carrier": "DHL", "tracking_number": "JD01" }))
            .send()
    };
    let refused = expect_json(ship(&app).await?, 409).await?;
    assert_eq!(refused["rule"], "not_fully_paid");
    assert_eq!(app.idempotency_record_count().await?, 0, "only successful responses are kept");

    expect_status(app.capture(order_id, "pay_1", ledger_tests::ORDER_TOTAL_MINOR).await?, 201)
        .await?;
    let shipped = expect_json(ship(&app).await?, 201).await?;
    assert_eq!(shipped["events"][0]["event_type"], "OrderShipped");
    Ok(())
}
