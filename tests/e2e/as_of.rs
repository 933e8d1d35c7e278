//! Point-in-time reads of an order: `as_of=<RFC 3339>` (events appended at or before that
//! time), `at_position=<n>` (events at or below that position) or both (the events inside
//! both) give exactly the state a
//! replay of the store up to that cut gives, and the same answer every time.

use std::time::Duration;

use ledger_tests::{expect_json, expect_status, pluck, poll_until, TestApp, ORDER_TOTAL_MINOR};
use serde_json::Value;
use uuid::Uuid;

async fn order_as_of(app: &TestApp, order_id: Uuid, query: &str) -> anyhow::Result<Value> {
    expect_json(app.get(&format!("/v1/orders/{order_id}?{query}")).send().await?, 200).await
}

fn encode(time: &str) -> String {
    time.replace('+', "%2B")
}

#[tokio::test]
async fn an_order_as_of_a_position_or_a_time_is_its_state_after_the_events_inside_the_cut(
) -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_as_of").await?;
    expect_status(app.capture(order_id, "pay_1", 1000).await?, 201).await?;
    expect_status(app.capture(order_id, "pay_2", ORDER_TOTAL_MINOR - 1000).await?, 201).await?;
    let history = app.history(order_id).await?;
    let positions = pluck::<i64>(&history, "events", "position");
    let times = pluck::<String>(&history, "events", "recorded_at");
    assert_eq!(positions.len(), 4, "placed, captured, captured, fully paid");

    for (index, (position, time)) in positions.iter().zip(&times).enumerate() {
        let version = index as u64 + 1;
        let by_position = order_as_of(&app, order_id, &format!("at_position={position}")).await?;
        let by_time = order_as_of(&app, order_id, &format!("as_of={}", encode(time))).await?;
        assert_eq!(by_position["stream_version"], version);
        assert_eq!(by_position, by_time, "the same cut by position and by time");
        // Between two events: the earlier state.
        if index + 1 < positions.len() && positions[index + 1] > position + 1 {
            let between =
                order_as_of(&app, order_id, &format!("at_position={}", position + 1)).await?;
            assert_eq!(between["stream_version"], version);
        }
        let events = expect_json(
            app.get(&format!("/v1/orders/{order_id}/events?at_position={position}")).send().await?,
            200,
        )
        .await?;
        assert_eq!(pluck::<i64>(&events, "events", "position"), positions[..=index]);
    }
    let after_first_capture =
        order_as_of(&app, order_id, &format!("at_position={}", positions[1])).await?;
    assert_eq!(after_first_capture["captured_minor"], 1000);
    assert_eq!(after_first_capture["outstanding_minor"], ORDER_TOTAL_MINOR - 1000);
    assert_eq!(after_first_capture["fully_paid"], false);

    // Before the first event the order did not exist; in the future it is what it is now.
    let before =
        app.get(&format!("/v1/orders/{order_id}?at_position={}", positions[0] - 1)).send().await?;
    assert_eq!(expect_json(before, 404).await?["code"], "not_found");
    let before =
        app.get(&format!("/v1/orders/{order_id}?as_of=2000-01-01T00:00:00Z")).send().await?;
    expect_json(before, 404).await?;
    let future = order_as_of(&app, order_id, "as_of=2999-01-01T00:00:00Z").await?;
    assert_eq!(future, app.order(order_id).await?);

    // Both given: the events inside both cuts, whichever is the tighter.
    let by_position = format!("at_position={}&as_of=2999-01-01T00:00:00Z", positions[1]);
    assert_eq!(order_as_of(&app, order_id, &by_position).await?["stream_version"], 2);
    let by_time = format!("at_position={}&as_of={}", positions[3], encode(&times[2]));
    assert_eq!(order_as_of(&app, order_id, &by_time).await?["stream_version"], 3);
    let neither = format!("at_position={}&as_of=2000-01-01T00:00:00Z", positions[3]);
    expect_json(app.get(&format!("/v1/orders/{order_id}?{neither}")).send().await?, 404).await?;
    Ok(())
}

#[tokio::test]
async fn a_bad_cut_is_422_naming_the_parameter() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_bad_cut").await?;
    for (query, field) in [
        ("as_of=yesterday", "as_of"),
        ("as_of=2026-11-23", "as_of"),
        ("at_position=-1", "at_position"),
        ("at_position=abc", "at_position"),
        ("as_at=2026-11-23T10:00:00Z", "as_at"),
    ] {
        for path in [format!("/v1/orders/{order_id}"), format!("/v1/orders/{order_id}/events")] {
            let response = app.get(&format!("{path}?{query}")).send().await?;
            let problem = expect_json(response, 422).await?;
            assert_eq!(problem["code"], "validation_failed", "{query}");
            assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_cut_is_answered_only_once_no_running_transaction_can_still_add_to_it(
) -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_settle").await?;
    let placed = app.history(order_id).await?;

    // A writer has appended version 2 but not committed: its event belongs to any cut
    // from now on, once it commits.
    let mut writer = app.database.client().await?;
    let open = writer.transaction().await?;
    open.execute(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, event_version, payload)
         SELECT stream_id, 2, $2, 'PaymentCaptured', 1,
                jsonb_build_object('payment_id', 'pay_late',
                    'amount', jsonb_build_object('amount_minor', 500, 'currency', payload->'total'->'currency'),
                    'method', 'card')
           FROM events WHERE stream_id = $1 AND stream_version = 1",
        &[&order_id, &Uuid::now_v7()],
    )
    .await?;

    let reader = app.http.clone();
    let url = app.url(&format!("/v1/orders/{order_id}?as_of=2999-01-01T00:00:00Z"));
    let read = tokio::spawn(async move { reader.get(url).send().await });
    // The read is waiting on the writer (its settle query is running), not answering.
    poll_until(Duration::from_secs(5), "the read to wait for the open writer", || async {
        let waiting: i64 = app
            .database
            .client()
            .await?
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND query LIKE '%FROM ledger_appenders()%'
                    AND pid <> pg_backend_pid()",
                &[],
            )
            .await?
            .get(0);
        Ok((waiting > 0).then_some(()))
    })
    .await?;
    assert!(!read.is_finished(), "no answer while the cut is unsettled");
    open.commit().await?;

    let answer = expect_json(read.await??, 200).await?;
    assert_eq!(answer["stream_version"], 2, "the late commit is inside the cut: {answer}");
    assert_eq!(answer["captured_minor"], 500);
    assert_eq!(pluck::<i64>(&placed, "events", "stream_version"), [1]);
    Ok(())
}
