//! Snapshots: every 100 events an order's state is stored with its shape version; commands
//! then load the snapshot and the events after it. A snapshot is only a cache: one of
//! another shape, or one that cannot be read, is ignored and the whole history folded.

use ledger_tests::{expect_json, expect_status, TestApp, ORDER_TOTAL_MINOR};
use uuid::Uuid;

async fn snapshot_of(app: &TestApp, order_id: Uuid) -> anyhow::Result<Option<(i32, i32)>> {
    let client = app.database.client().await?;
    Ok(client
        .query_opt(
            "SELECT stream_version, shape_version FROM snapshots WHERE stream_id = $1",
            &[&order_id],
        )
        .await?
        .map(|row| (row.get(0), row.get(1))))
}

/// Places an order and records `failures` failed payment attempts (one event each).
async fn long_order(app: &TestApp, failures: usize) -> anyhow::Result<Uuid> {
    let order_id = app.place_order("cus_long").await?;
    for n in 0..failures {
        expect_status(app.fail_payment(order_id, &format!("pay_{n}"), 100).await?, 201).await?;
    }
    Ok(order_id)
}

#[tokio::test]
async fn a_long_order_is_snapshotted_every_hundred_events_and_decided_from_it() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    let order_id = long_order(&app, 150).await?;
    assert_eq!(snapshot_of(&app, order_id).await?, Some((100, domain::ORDER_SHAPE_VERSION)));

    // Decisions from snapshot + tail are the decisions of the whole history.
    let too_much = app.capture(order_id, "pay_big", ORDER_TOTAL_MINOR + 1).await?;
    assert_eq!(expect_json(too_much, 409).await?["rule"], "capture_exceeds_outstanding");
    let captured = app.capture(order_id, "pay_ok", ORDER_TOTAL_MINOR).await?;
    assert_eq!(TestApp::version_of(captured).await?, 153, "capture and fully paid after 151");
    let order = app.order(order_id).await?;
    assert_eq!(order["failed_payment_attempts"], 150);
    assert_eq!(order["fully_paid"], true);
    expect_status(app.ship(order_id).await?, 201).await?;
    Ok(())
}

#[tokio::test]
async fn a_snapshot_of_another_shape_or_unreadable_is_ignored() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = long_order(&app, 120).await?;
    expect_status(app.capture(order_id, "pay_dup", 100).await?, 201).await?;
    let client = app.database.client().await?;

    // A snapshot written by a build with another state shape: not used.
    client
        .execute(
            "UPDATE snapshots SET shape_version = shape_version + 1,
                    state = '{\"Placed\": {\"something\": \"else\"}}' WHERE stream_id = $1",
            &[&order_id],
        )
        .await?;
    expect_status(app.fail_payment(order_id, "pay_after_1", 100).await?, 201).await?;
    let refused = app.capture(order_id, "pay_dup", 100).await?;
    assert_eq!(expect_json(refused, 409).await?["rule"], "payment_already_captured");

    // A snapshot of this shape that does not read as an order: ignored too.
    client
        .execute(
            "UPDATE snapshots SET shape_version = $2, state = '{\"nonsense\": 1}' WHERE stream_id = $1",
            &[&order_id, &domain::ORDER_SHAPE_VERSION],
        )
        .await?;
    let refused = app.capture(order_id, "pay_dup", 100).await?;
    assert_eq!(expect_json(refused, 409).await?["rule"], "payment_already_captured");
    let captured = app.capture(order_id, "pay_good", 1000).await?;
    assert_eq!(TestApp::version_of(captured).await?, 124);
    let order = app.order(order_id).await?;
    assert_eq!(order["failed_payment_attempts"], 121);
    assert_eq!(order["captured_minor"], 1100);
    Ok(())
}
