//! Optimistic concurrency under real contention: a lost race is a conflict, never a lost
//! or duplicated event, and streams never have gaps.

use std::sync::Arc;

use eventstore::{schema, AppendError, Cut, EventStore, Metadata, PoolSettings};
use futures_util::future::join_all;
use ledger_tests::{expect_json, pluck, TestApp, TestDatabase, ORDER_TOTAL_MINOR};
use tokio::sync::Barrier;
use uuid::Uuid;

fn failure_event(n: usize) -> anyhow::Result<eventstore::NewEvent> {
    let event = domain::Event::OrderCancelled(domain::OrderCancelled {
        reason: domain::Reason::parse(&format!("writer {n}"))?,
    });
    Ok(schema::encode(&event)?)
}

#[tokio::test]
async fn sixty_four_appends_at_one_expected_version_have_exactly_one_winner() -> anyhow::Result<()>
{
    const WRITERS: usize = 64;
    const ROUNDS: u32 = 15;
    let database = TestDatabase::create().await?;
    let mut settings = PoolSettings::new(database.url.clone());
    settings.max_size = 16;
    let store = EventStore::new(eventstore::connect(&settings)?);
    let stream_id = Uuid::now_v7();

    for round in 0..ROUNDS {
        // Every writer read the stream at version `round` and appends after it.
        let attempts = (0..WRITERS).map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut unit = store.begin(&[stream_id]).await?;
                let event = failure_event(writer)?;
                match unit.append_to_stream(stream_id, round, &[event], &Metadata::default()).await
                {
                    Ok(appended) => {
                        unit.commit().await?;
                        anyhow::Ok(Some(appended))
                    }
                    Err(AppendError::Conflict) => Ok(None),
                    Err(other) => Err(other.into()),
                }
            })
        });
        let outcomes = join_all(attempts).await.into_iter().collect::<Result<Vec<_>, _>>()?;
        let outcomes = outcomes.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        let winners: Vec<_> = outcomes.iter().flatten().collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one writer wins");
        assert_eq!(winners[0].len(), 1, "round {round}: the winner appended its event");
    }

    let stream = store.load(stream_id, Cut::Latest).await?;
    let versions: Vec<u32> = stream.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=ROUNDS).collect::<Vec<_>>(), "no gap, no duplicate");
    Ok(())
}

/// The same race without the stream lock, straight at the table: 32 transactions insert
/// the same stream version at the same moment. The schema alone lets exactly one commit.
#[tokio::test]
async fn the_schema_itself_admits_one_event_per_stream_version() -> anyhow::Result<()> {
    // A connection each; the server's 100 are shared with the spec running beside this one.
    const WRITERS: usize = 32;
    let database = TestDatabase::create().await?;
    let stream_id = Uuid::now_v7();
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut clients = Vec::new();
    for _ in 0..WRITERS {
        clients.push(database.client().await?);
    }
    let attempts = clients.into_iter().map(|mut client| {
        let barrier = barrier.clone();
        tokio::spawn(async move {
            let transaction = client.transaction().await?;
            barrier.wait().await;
            let inserted = transaction
                .execute(
                    "INSERT INTO events (stream_id, stream_version, event_id, event_type, payload)
                     VALUES ($1, 1, $2, 'OrderCancelled', '{}'::jsonb)",
                    &[&stream_id, &Uuid::new_v4()],
                )
                .await;
            match inserted {
                Ok(_) => {
                    transaction.commit().await?;
                    anyhow::Ok(true)
                }
                Err(error)
                    if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
                {
                    Ok(false)
                }
                Err(error) => Err(error.into()),
            }
        })
    });
    let outcomes = join_all(attempts).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    let committed = outcomes.into_iter().collect::<anyhow::Result<Vec<bool>>>()?;
    assert_eq!(committed.iter().filter(|c| **c).count(), 1);
    let client = database.client().await?;
    let count: i64 = client
        .query_one("SELECT count(*) FROM events WHERE stream_id = $1", &[&stream_id])
        .await?
        .get(0);
    assert_eq!(count, 1);
    Ok(())
}

#[tokio::test]
async fn concurrent_commands_with_the_same_if_match_have_exactly_one_winner() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_if_match").await?;

    let requests = (0..64).map(|n| {
        app.post(&format!("/v1/orders/{order_id}/payments"))
            .header("if-match", "\"1\"")
            .json(&serde_json::json!({ "payment_id": format!("pay_{n}"), "amount_minor": 10, "method": "card" }))
            .send()
    });
    let responses = join_all(requests).await;
    let mut created = 0;
    for response in responses {
        let response = response?;
        match response.status().as_u16() {
            201 => created += 1,
            409 => {
                let problem = expect_json(response, 409).await?;
                assert_eq!(problem["code"], "version_conflict");
            }
            other => anyhow::bail!("unexpected status {other}"),
        }
    }
    assert_eq!(created, 1);
    let order = app.order(order_id).await?;
    assert_eq!(order["stream_version"], 2);
    assert_eq!(order["captured_minor"], 10);
    Ok(())
}

#[tokio::test]
async fn concurrent_commands_without_if_match_all_apply_in_turn() -> anyhow::Result<()> {
    const CAPTURES: i64 = 40;
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_hot_order").await?;

    let payment_ids: Vec<String> = (0..CAPTURES).map(|n| format!("pay_{n}")).collect();
    let responses = join_all(payment_ids.iter().map(|id| app.capture(order_id, id, 50))).await;
    for response in responses {
        expect_json(response?, 201).await?;
    }
    let order = app.order(order_id).await?;
    assert_eq!(order["captured_minor"], CAPTURES * 50);
    assert_eq!(order["outstanding_minor"], ORDER_TOTAL_MINOR - CAPTURES * 50);
    let history = app.history(order_id).await?;
    let versions: Vec<i64> = pluck(&history, "events", "stream_version");
    assert_eq!(versions, (1..=CAPTURES + 1).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test]
async fn the_last_capture_wins_the_balance_and_the_others_are_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_race_to_settle").await?;

    // Ten clients each try to pay the whole order at once: exactly one may.
    let payment_ids: Vec<String> = (0..10).map(|n| format!("pay_{n}")).collect();
    let responses =
        join_all(payment_ids.iter().map(|id| app.capture(order_id, id, ORDER_TOTAL_MINOR))).await;
    let mut statuses = Vec::new();
    for response in responses {
        statuses.push(response?.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 9, "{statuses:?}");
    assert_eq!(app.order(order_id).await?["captured_minor"], ORDER_TOTAL_MINOR);
    Ok(())
}
