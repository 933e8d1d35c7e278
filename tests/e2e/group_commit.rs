//! Group commit: concurrent commands for different orders share one transaction; a command
//! refused inside a batch fails alone; commands on one order in one batch apply in turn;
//! placements of new orders share a transaction of their own, and one whose order exists
//! after all is answered as the existing order says; and nobody is answered before the
//! batch is durable.

use futures_util::future::join_all;
use ledger_tests::{expect_json, TestApp, ORDER_TOTAL_MINOR};
use serde_json::json;
use uuid::Uuid;

/// Long enough that requests sent together land in one batch.
/// Writers wait 50 ms for more commands, so concurrent ones surely share a batch.
fn long_linger(settings: &mut ledger::Settings) {
    if let Some(group) = &mut settings.group_commit {
        group.linger = std::time::Duration::from_millis(50);
    }
}

async fn transaction_of(app: &TestApp, order_id: Uuid, version: i32) -> anyhow::Result<i64> {
    let client = app.database.client().await?;
    let row = client
        .query_one(
            "SELECT tx_id::text::bigint FROM events WHERE stream_id = $1 AND stream_version = $2",
            &[&order_id, &version],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn concurrent_commands_for_different_orders_share_a_transaction() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(long_linger).await?;
    let ids: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
    let placed = join_all(
        ids.iter()
            .map(|id| app.post("/v1/orders").json(&TestApp::order_body(*id, "cus_group")).send()),
    )
    .await;
    for response in placed {
        assert_eq!(response?.status().as_u16(), 201);
    }
    let client = app.database.client().await?;
    let (orders, transactions): (i64, i64) = client
        .query_one("SELECT count(DISTINCT stream_id), count(DISTINCT tx_id) FROM events", &[])
        .await
        .map(|row| (row.get(0), row.get(1)))?;
    assert_eq!(orders, 40);
    assert!(transactions <= 10, "40 orders in {transactions} transactions");
    Ok(())
}

#[tokio::test]
async fn a_refused_command_in_a_batch_fails_alone() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(long_linger).await?;
    let (a, b, c, e) = (
        app.place_order("cus_a").await?,
        app.place_order("cus_b").await?,
        app.place_order("cus_c").await?,
        app.place_order("cus_e").await?,
    );
    let d = Uuid::now_v7();
    let (capture_a, capture_e, overcapture_b, stale_c, place_d) = tokio::join!(
        app.capture(a, "pay_1", 1000),
        app.capture(e, "pay_1", 1000),
        app.capture(b, "pay_1", ORDER_TOTAL_MINOR + 1),
        app.post(&format!("/v1/orders/{c}/payments"))
            .header("if-match", "\"7\"")
            .json(&json!({ "payment_id": "pay_1", "amount_minor": 10, "method": "card" }))
            .send(),
        app.post("/v1/orders").json(&TestApp::order_body(d, "cus_d")).send(),
    );
    assert_eq!(capture_a?.status().as_u16(), 201);
    assert_eq!(capture_e?.status().as_u16(), 201);
    let refused = expect_json(overcapture_b?, 409).await?;
    assert_eq!(refused["rule"], "capture_exceeds_outstanding", "{refused}");
    assert_eq!(expect_json(stale_c?, 409).await?["code"], "version_conflict");
    assert_eq!(place_d?.status().as_u16(), 201);
    assert_eq!(
        transaction_of(&app, a, 2).await?,
        transaction_of(&app, e, 2).await?,
        "the accepted ones committed together"
    );
    assert_eq!(app.history(d).await?["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(app.history(b).await?["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(app.history(c).await?["events"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn commands_on_one_order_in_one_batch_apply_in_turn() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(long_linger).await?;
    let order_id = app.place_order("cus_turns").await?;
    let payments: Vec<String> = (0..10).map(|n| format!("pay_{n}")).collect();
    let captures = join_all(payments.iter().map(|p| app.capture(order_id, p, 100))).await;
    let mut versions = Vec::new();
    for response in captures {
        versions.push(TestApp::version_of(response?).await?);
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=11).collect::<Vec<u32>>());
    let order = app.order(order_id).await?;
    assert_eq!(order["captured_minor"], 1000);
    assert_eq!(order["stream_version"], 11);
    Ok(())
}

/// Placements need nothing loaded and are written in a unit of their own, checked by their
/// orders' first versions. An order that exists already makes that unit write nothing:
/// its placements then go the whole way, so the new ones are placed all the same and the
/// existing one gets the answer its order gives — refused, unchanged.
#[tokio::test]
async fn a_placement_of_an_existing_order_among_new_ones_is_refused_alone() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(long_linger).await?;
    let existing = app.place_order("cus_first").await?;
    let new: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
    let bodies: Vec<(Uuid, serde_json::Value)> = new
        .iter()
        .map(|id| (*id, TestApp::order_body(*id, "cus_new")))
        .chain([(existing, TestApp::order_body(existing, "cus_again"))])
        .collect();
    let answers =
        join_all(bodies.iter().map(|(_, body)| app.post("/v1/orders").json(body).send())).await;
    for ((order_id, _), answer) in bodies.iter().zip(answers) {
        if *order_id == existing {
            let refused = expect_json(answer?, 409).await?;
            assert_eq!(refused["rule"], "order_already_placed", "{refused}");
        } else {
            assert_eq!(answer?.status().as_u16(), 201);
        }
    }
    assert_eq!(app.history(existing).await?["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(app.order(existing).await?["customer_id"], "cus_first");
    let mut transactions = std::collections::HashSet::new();
    for id in &new {
        assert_eq!(app.history(*id).await?["events"].as_array().map(Vec::len), Some(1));
        transactions.insert(transaction_of(&app, *id, 1).await?);
    }
    assert_eq!(transactions.len(), 1, "the new orders were placed together");
    assert_eq!(app.event_count().await?, 7);
    Ok(())
}

/// With every command in a transaction of its own, a placement takes the same short way,
/// and one for an existing order is refused as before.
#[tokio::test]
async fn without_group_commit_a_placement_is_written_alone_and_checked_the_same(
) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|settings| settings.group_commit = None).await?;
    let order_id = app.place_order("cus_alone").await?;
    let again = app.post("/v1/orders").json(&TestApp::order_body(order_id, "cus_alone")).send();
    let refused = expect_json(again.await?, 409).await?;
    assert_eq!(refused["rule"], "order_already_placed", "{refused}");
    assert_eq!(app.event_count().await?, 1);
    Ok(())
}

#[tokio::test]
async fn nobody_is_answered_before_the_batch_is_written() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let mut blocker = app.database.client().await?;
    let lock = blocker.transaction().await?;
    lock.batch_execute("LOCK TABLE events IN EXCLUSIVE MODE").await?;

    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let requests: Vec<_> = ids
        .iter()
        .map(|id| {
            let request = app.post("/v1/orders").json(&TestApp::order_body(*id, "cus_wait"));
            tokio::spawn(request.send())
        })
        .collect();
    app.database.until_a_session_waits_on_a_lock().await?;
    assert!(requests.iter().all(|r| !r.is_finished()), "no answer while the write waits");
    lock.rollback().await?;
    for request in requests {
        assert_eq!(request.await??.status().as_u16(), 201);
    }
    assert_eq!(app.event_count().await?, 5);
    Ok(())
}

/// A database that stops answering (a server on its way down, a partitioned network) costs
/// each command at most the store's wait timeout, counted from when it was queued: a
/// command queued behind batches that are themselves waiting in vain does not wait for
/// each of them in turn. Every command is refused as retryable, none is written, and once
/// the database answers again commands are accepted by the same process.
#[tokio::test]
async fn with_the_database_silent_each_command_is_refused_within_the_wait_timeout(
) -> anyhow::Result<()> {
    const WAIT: std::time::Duration = std::time::Duration::from_millis(1000);
    let cut = ledger_tests::TcpCut::to(&ledger_tests::server_address()?).await?;
    let via = cut.address();
    let app = TestApp::spawn_with(move |settings| {
        let url = ledger_tests::url_via(&settings.database.database_url, &via);
        settings.database.database_url = url.unwrap_or_default();
        settings.database.wait_timeout = WAIT;
    })
    .await?;
    app.place_order("cus_before").await?;

    cut.blackhole();
    // A command every 40 ms for 3 s, each answered on its own: more arrive while every
    // writer waits than the writers can take.
    let mut sent = Vec::new();
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(40));
    for _ in 0..75 {
        ticks.tick().await;
        let request =
            app.post("/v1/orders").json(&TestApp::order_body(Uuid::now_v7(), "cus_silent"));
        sent.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let response = request.send().await;
            (started.elapsed(), response)
        }));
    }
    let mut slowest = std::time::Duration::ZERO;
    for request in sent {
        let (latency, response) = request.await?;
        let body = expect_json(response?, 503).await?;
        assert_eq!(body["code"], "service_unavailable", "{body}");
        slowest = slowest.max(latency);
    }
    assert!(slowest < WAIT + WAIT / 2, "a command waited {slowest:?} with a {WAIT:?} wait timeout");

    cut.mend();
    ledger_tests::poll_until(
        std::time::Duration::from_secs(20),
        "a command accepted again",
        || {
            let request =
                app.post("/v1/orders").json(&TestApp::order_body(Uuid::now_v7(), "cus_after"));
            async move { Ok((request.send().await?.status().as_u16() == 201).then_some(())) }
        },
    )
    .await?;
    let client = app.database.client().await?;
    let silent: i64 = client
        .query_one("SELECT count(*) FROM events WHERE payload->>'customer_id' = 'cus_silent'", &[])
        .await?
        .get(0);
    assert_eq!(silent, 0, "a refused command was written");
    Ok(())
}
