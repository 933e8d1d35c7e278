//! `Idempotency-Key`: a retry gets the first response byte for byte and appends nothing,
//! also under concurrency and across a restart; reusing a key for another request is 422.
//! After its retention a key is unknown again, and its record is pruned without blocking
//! the commands that write keys.

use std::time::Duration;

use futures_util::future::join_all;
use ledger_tests::{expect_json, expect_status, poll_until, TestApp};
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

/// An hour: the specs age records by moving their creation time back, not by waiting.
const RETENTION: Duration = Duration::from_secs(3600);

/// Moves the creation of `key`'s record (or of every record) back past the retention.
async fn expire(app: &TestApp, key: Option<&str>) -> anyhow::Result<u64> {
    let client = app.database.client().await?;
    Ok(client
        .execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '2 hours'
              WHERE idempotency_key = coalesce($1, idempotency_key)",
            &[&key],
        )
        .await?)
}

async fn old_records(client: &tokio_postgres::Client) -> anyhow::Result<i64> {
    let sql = "SELECT count(*) FROM idempotency_keys WHERE idempotency_key LIKE 'old-%'";
    Ok(client.query_one(sql, &[]).await?.get(0))
}

/// The order id a placement answered with.
fn placed_order(body: &str) -> anyhow::Result<String> {
    let body: serde_json::Value = serde_json::from_str(body)?;
    body["order_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no order_id in {body}"))
}

#[tokio::test]
async fn a_key_past_its_retention_is_a_fresh_command() -> anyhow::Result<()> {
    // The pruner is kept away: the record is still on disk when the key comes back.
    let app = TestApp::spawn_with(|settings| {
        settings.idempotency.retention = RETENTION;
        settings.idempotency.expiry.interval = Duration::from_secs(3600);
    })
    .await?;
    let mut body = TestApp::order_body(Uuid::nil(), "cus_expired_key");
    body.as_object_mut().map(|o| o.remove("order_id"));
    let first = expect_status(place_with_key(&app, "key-expiring", &body).await?, 201).await?;
    let replayed = place_with_key(&app, "key-expiring", &body).await?;
    assert_eq!(replayed.headers()["idempotent-replayed"], "true", "within the retention");
    assert_eq!(expect_status(replayed, 201).await?, first);

    assert_eq!(expire(&app, Some("key-expiring")).await?, 1);
    let fresh = place_with_key(&app, "key-expiring", &body).await?;
    assert!(
        fresh.headers().get("idempotent-replayed").is_none(),
        "past the retention: a new command"
    );
    let fresh = expect_status(fresh, 201).await?;
    assert_ne!(placed_order(&fresh)?, placed_order(&first)?, "the server placed a second order");
    assert_eq!(app.event_count().await?, 2);

    // The key now remembers the second command, for a retention of its own.
    let again = place_with_key(&app, "key-expiring", &body).await?;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(expect_status(again, 201).await?, fresh);
    // An expired key may also come back with another request: nothing remembers the first.
    assert_eq!(expire(&app, Some("key-expiring")).await?, 1);
    let other = TestApp::order_body(Uuid::now_v7(), "cus_other_request");
    expect_status(place_with_key(&app, "key-expiring", &other).await?, 201).await?;
    assert_eq!(app.event_count().await?, 3);
    assert_eq!(app.idempotency_record_count().await?, 1);
    Ok(())
}

#[tokio::test]
async fn expired_records_are_pruned_in_batches_skipping_keys_in_use() -> anyhow::Result<()> {
    // No pruning until the records below are in place and one of them is held.
    let configure = |interval: Duration| {
        move |settings: &mut ledger::Settings| {
            settings.idempotency.retention = RETENTION;
            settings.idempotency.expiry.interval = interval;
            settings.idempotency.expiry.batch = 100;
        }
    };
    let mut app = TestApp::spawn_with(configure(Duration::from_secs(3600))).await?;
    let client = app.database.client().await?;
    // 2 500 records from long ago (25 batches), and keys used just now.
    client
        .execute(
            "INSERT INTO idempotency_keys (idempotency_key, request_fingerprint, stream_id, created_at)
             SELECT 'old-' || n, sha256(n::text::bytea), gen_random_uuid(), now() - interval '2 days'
               FROM generate_series(1, 2500) AS n",
            &[],
        )
        .await?;
    let mut recent = Vec::new();
    for n in 0..5 {
        let body = TestApp::order_body(Uuid::now_v7(), "cus_recent_key");
        let key = format!("recent-{n}");
        recent.push((
            key.clone(),
            expect_status(place_with_key(&app, &key, &body).await?, 201).await?,
            body,
        ));
    }
    assert_eq!(old_records(&client).await?, 2500);

    // A command holds one old record (a retry claiming its key right now): the pruner
    // goes around it instead of waiting.
    let mut holder = app.database.client().await?;
    let held = holder.transaction().await?;
    let locked = held
        .execute("SELECT 1 FROM idempotency_keys WHERE idempotency_key = 'old-7' FOR UPDATE", &[])
        .await?;
    assert_eq!(locked, 1);
    app.reconfigure(configure(Duration::from_millis(50)))?;
    app.restart().await?;
    poll_until(
        Duration::from_secs(30),
        "every old record but the held one to be pruned",
        || async { Ok((old_records(&client).await? == 1).then_some(())) },
    )
    .await?;
    // Commands go on meanwhile, with keys of their own.
    let body = TestApp::order_body(Uuid::now_v7(), "cus_during_prune");
    expect_status(place_with_key(&app, "during-prune", &body).await?, 201).await?;
    held.rollback().await?;
    poll_until(Duration::from_secs(30), "the released record to be pruned too", || async {
        Ok((old_records(&client).await? == 0).then_some(()))
    })
    .await?;

    for (key, first, body) in &recent {
        let replayed = place_with_key(&app, key, body).await?;
        assert_eq!(
            replayed.headers()["idempotent-replayed"],
            "true",
            "{key} is within its retention"
        );
        assert_eq!(&expect_status(replayed, 201).await?, first);
    }
    assert_eq!(app.idempotency_record_count().await?, 6, "the recent keys are all kept");
    Ok(())
}
