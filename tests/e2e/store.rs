//! Loading a stream whole or up to a version, a position or a time.

use eventstore::{Cut, EventStore, PoolSettings};
use ledger_tests::{expect_status, TestApp};

#[tokio::test]
async fn a_stream_loads_whole_or_up_to_a_version_a_position_or_a_time() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_cuts").await?;
    let other = app.place_order("cus_cuts_other").await?;
    expect_status(app.capture(order_id, "pay_1", 1000).await?, 201).await?;
    expect_status(app.capture(other, "pay_1", 1000).await?, 201).await?;
    expect_status(app.capture(order_id, "pay_2", 2000).await?, 201).await?;

    let store = EventStore::new(eventstore::connect(&PoolSettings::new(app.database.url.clone()))?);
    let whole = store.load(order_id, Cut::Latest).await?;
    let versions = |events: &[eventstore::RecordedEvent]| {
        events.iter().map(|e| e.stream_version).collect::<Vec<_>>()
    };
    assert_eq!(versions(&whole), [1, 2, 3, 4], "placed, captured, captured + fully paid");
    assert!(whole.iter().all(|e| e.stream_id == order_id));

    assert_eq!(versions(&store.load(order_id, Cut::Version(2)).await?), [1, 2]);
    assert_eq!(versions(&store.load(order_id, Cut::Version(0)).await?), Vec::<u32>::new());

    let second = &whole[1];
    assert_eq!(
        versions(&store.load(order_id, Cut::Position(second.global_position)).await?),
        [1, 2]
    );
    assert_eq!(
        versions(&store.load(order_id, Cut::Position(second.global_position - 1)).await?),
        [1]
    );

    assert_eq!(versions(&store.load(order_id, Cut::Time(second.recorded_at)).await?), [1, 2]);
    let before_anything = whole[0].recorded_at - chrono::Duration::seconds(1);
    assert!(store.load(order_id, Cut::Time(before_anything)).await?.is_empty());

    let decoded: Vec<&str> =
        whole.iter().map(|e| e.decode().map(|d| d.event_type())).collect::<Result<_, _>>()?;
    assert_eq!(decoded, ["OrderPlaced", "PaymentCaptured", "PaymentCaptured", "OrderFullyPaid"]);
    Ok(())
}
