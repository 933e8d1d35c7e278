//! What the bus never delivers still reaches the read models: each projection catches up
//! from the event store on events older than its grace period, with no restart and no
//! later event of the order needed. And the lag is told as it is: per projection the
//! events past and below its highest applied position, its watermark's age, the consumer
//! group's lag; the relay's lag in seconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ledger::Role;
use ledger_tests::{expect_json, poll_until, TestApp, TestBroker};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use uuid::Uuid;

/// Grace plus interval as configured below, plus room for a loaded machine.
const BOUND: Duration = Duration::from_secs(10);

async fn projections_status(app: &TestApp) -> anyhow::Result<Value> {
    expect_json(app.get("/v1/admin/projections").send().await?, 200).await
}

fn report<'a>(status: &'a Value, projection: &str) -> &'a Value {
    status["projections"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["projection"] == projection))
        .unwrap_or(&Value::Null)
}

fn worker<'a>(status: &'a Value, projection: &str) -> &'a Value {
    status["workers"]
        .as_array()
        .and_then(|all| all.iter().find(|w| w["projection"] == projection))
        .unwrap_or(&Value::Null)
}

/// Waits until the payments read model shows `version` of every order (without asking the
/// API to wait: the bound is the test's).
async fn until_applied(app: &TestApp, orders: &[(Uuid, u32)]) -> anyhow::Result<()> {
    poll_until(BOUND, "every order in the payments read model", || async {
        for (order_id, version) in orders {
            let response = app.get(&format!("/v1/payments/{order_id}")).send().await?;
            if response.status() != 200 {
                return Ok(None);
            }
            let payments: Value = response.json().await?;
            if payments["stream_version"].as_u64() < Some(u64::from(*version)) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
}

/// Waits until both projections' catch-up applied `events` (each projection's catch-up
/// runs on its own) and their durable reports show it; returns the status then. (The
/// status reads the reports from the database before the workers' counters from memory,
/// so one answer can hold a counter that is ahead of its report.)
async fn until_caught_up(app: &TestApp, events: u64) -> anyhow::Result<Value> {
    poll_until(BOUND, &format!("both projections to catch up {events} events"), || async {
        let status = projections_status(app).await?;
        let caught_up = ["payments", "notifications"].iter().all(|projection| {
            worker(&status, projection)["caught_up_events"] == events
                && report(&status, projection)["lag_events"] == 0
        });
        Ok(caught_up.then_some(status))
    })
    .await
}

#[tokio::test]
async fn events_the_bus_never_delivered_reach_the_read_models_from_the_store() -> anyhow::Result<()>
{
    // No relay: nothing is ever published.
    let app = TestApp::spawn_with(|settings| {
        settings.roles = vec![Role::Api, Role::Projector];
        settings.catch_up.grace = Duration::from_millis(300);
        settings.catch_up.interval = Duration::from_millis(200);
    })
    .await?;
    let order_id = app.place_order("cus_undelivered").await?;
    let version = TestApp::version_of(app.capture(order_id, "pay_1", 1000).await?).await?;

    until_applied(&app, &[(order_id, version)]).await?;
    let status = until_caught_up(&app, 2).await?;
    let notifications = app.notifications(&format!("order_id={order_id}")).await?;
    assert_eq!(notifications["items"].as_array().map(Vec::len), Some(2), "{notifications}");
    for projection in ["payments", "notifications"] {
        assert_eq!(report(&status, projection)["lag_events"], 0, "{status}");
    }
    Ok(())
}

#[tokio::test]
async fn an_event_the_catch_up_cannot_apply_does_not_hold_back_the_others() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|settings| {
        settings.roles = vec![Role::Api, Role::Projector];
        settings.catch_up.grace = Duration::from_millis(300);
        settings.catch_up.interval = Duration::from_millis(200);
    })
    .await?;
    // A stored event no projection can decode (as a newer release might write), before
    // and among the events it can.
    let before = app.place_order("cus_before_the_unknown").await?;
    app.database
        .client()
        .await?
        .execute(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, event_version, payload)
             VALUES ($1, 1, $2, 'OrderTeleported', 1, '{}'::jsonb)",
            &[&Uuid::now_v7(), &Uuid::now_v7()],
        )
        .await?;
    let after = app.place_order("cus_after_the_unknown").await?;
    let captured = TestApp::version_of(app.capture(after, "pay_1", 1000).await?).await?;

    until_applied(&app, &[(before, 1), (after, captured)]).await?;
    until_caught_up(&app, 3).await?;
    Ok(())
}

/// The finding this answers: the relay published every event, then the broker (in-memory
/// storage) restarted and forgot them all; the orders get no further events.
#[tokio::test]
async fn messages_a_restarted_broker_forgot_are_healed_without_a_restart() -> anyhow::Result<()> {
    let mut broker = TestBroker::start().await?;
    let address = broker.address();
    let mut app = TestApp::spawn_with(move |settings| {
        settings.roles = vec![Role::Api, Role::Relay];
        settings.bus.kafka.brokers.clone_from(&address);
    })
    .await?;
    let mut orders = Vec::new();
    for n in 0..10 {
        let order_id = app.place_order(&format!("cus_forgotten_{n}")).await?;
        let version = TestApp::version_of(app.capture(order_id, "pay_1", 700).await?).await?;
        orders.push((order_id, version));
    }
    poll_until(BOUND, "the relay to publish all 20 events", || async {
        let status = app.relay_status().await?;
        Ok((status["store"]["backlog"] == 0 && status["store"]["published_events"] == 20)
            .then_some(()))
    })
    .await?;
    broker.forget_everything().await?;

    // Projections start only now, on a broker that has never heard of these events.
    let address = broker.address();
    app.reconfigure(move |settings| {
        settings.roles = Role::ALL.to_vec();
        settings.bus.kafka.brokers.clone_from(&address);
    })?;
    app.restart().await?;
    until_applied(&app, &orders).await?;
    let status = projections_status(&app).await?;
    assert_eq!(worker(&status, "payments")["caught_up_events"], 20, "{status}");
    Ok(())
}

async fn raw_producer(app: &TestApp) -> anyhow::Result<FutureProducer> {
    app.kafka.ensure_topics().await?;
    Ok(app.kafka.producer_config().create()?)
}

/// Publishes the stored event at `position` as the relay would.
async fn publish_as_the_relay(app: &TestApp, position: i64) -> anyhow::Result<()> {
    let client = app.database.client().await?;
    let row = client
        .query_one(
            "SELECT event_id, event_type, event_version, stream_id, stream_version, recorded_at, payload
               FROM events WHERE global_position = $1",
            &[&position],
        )
        .await?;
    let stream_id: Uuid = row.get(3);
    let envelope = json!({
        "event_id": row.get::<_, Uuid>(0), "event_type": row.get::<_, String>(1),
        "event_version": row.get::<_, i16>(2), "stream_id": stream_id,
        "stream_version": row.get::<_, i32>(4), "position": position,
        "recorded_at": row.get::<_, chrono::DateTime<chrono::Utc>>(5),
        "correlation_id": null, "causation_id": null, "data": row.get::<_, Value>(6),
    });
    let (key, payload) = (stream_id.to_string(), serde_json::to_vec(&envelope)?);
    raw_producer(app)
        .await?
        .send(
            FutureRecord::to(&app.kafka.orders_topic()).key(&key).payload(&payload),
            Duration::from_secs(5),
        )
        .await
        .map_err(|(error, _)| error)?;
    Ok(())
}

fn gauge(metrics: &str, name: &str, projection: Option<&str>) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let matches = match projection {
            Some(projection) => series == format!("{name}{{projection=\"{projection}\"}}"),
            None => series == name,
        };
        matches.then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test]
async fn lag_is_reported_as_it_is() -> anyhow::Result<()> {
    // No relay, and a catch-up that waits an hour (until the test shortens it).
    let grace = Arc::new(AtomicU64::new(3_600_000));
    let configured = grace.clone();
    let mut app = TestApp::spawn_with(move |settings| {
        settings.roles = vec![Role::Api, Role::Projector];
        settings.catch_up.grace = Duration::from_millis(configured.load(Ordering::SeqCst));
        settings.catch_up.interval = Duration::from_millis(200);
    })
    .await?;
    // Until the bus feeds a consumer, the catch-up feeds it from the store after a short
    // grace: the orders must be placed once both are fed, or the catch-up applies them.
    app.consumers_fed().await?;
    let mut orders = Vec::new();
    for n in 0..3 {
        orders.push((app.place_order(&format!("cus_lag_{n}")).await?, 1));
    }
    let client = app.database.client().await?;
    let positions: Vec<i64> = client
        .query("SELECT global_position FROM events ORDER BY global_position", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Only the last order reaches the consumers: the first two are holes below it.
    publish_as_the_relay(&app, positions[2]).await?;
    app.payments(orders[2].0, 1).await?;

    let status = projections_status(&app).await?;
    let payments = report(&status, "payments");
    assert_eq!(payments["last_position"], positions[2], "{status}");
    assert_eq!(payments["lag_events"], 0, "{status}");
    assert_eq!(payments["unapplied_below_highest"], 2, "{status}");
    assert_eq!(payments["watermark_position"], positions[0] - 1, "{status}");
    let age = payments["watermark_age_seconds"].as_f64().unwrap_or_default();
    assert!(age > 0.0, "complete only up to before the first order: {status}");
    let relay = app.relay_status().await?;
    assert_eq!(relay["store"]["backlog"], 3, "{relay}");
    assert!(relay["store"]["lag_seconds"].as_f64().is_some_and(|s| s > 0.0), "{relay}");

    let metrics = app.get("/metrics").send().await?.text().await?;
    let unapplied = gauge(&metrics, "ledger_projection_unapplied_events", Some("payments"));
    assert_eq!(unapplied, Some(2.0), "{metrics}");
    let watermark_age =
        gauge(&metrics, "ledger_projection_watermark_age_seconds", Some("payments"));
    assert!(watermark_age.is_some_and(|age| age > 0.0), "{metrics}");
    assert!(gauge(&metrics, "ledger_relay_lag_seconds", None).is_some_and(|s| s > 0.0));
    // The broker's view: the one message was consumed and acknowledged.
    let lag = poll_until(BOUND, "the consumer group's lag", || async {
        let metrics = app.get("/metrics").send().await?.text().await?;
        Ok(gauge(&metrics, "ledger_projection_consumer_lag_messages", Some("payments")))
    })
    .await?;
    assert_eq!(lag, 0.0);

    // Once the catch-up may act, the holes close and the watermark is current.
    grace.store(100, Ordering::SeqCst);
    app.restart().await?;
    until_applied(&app, &orders).await?;
    let status = poll_until(BOUND, "the watermark past every order", || async {
        let status = projections_status(&app).await?;
        let payments = report(&status, "payments");
        Ok((payments["unapplied_below_highest"] == 0
            && payments["watermark_position"] == positions[2])
            .then_some(status))
    })
    .await?;
    let age = report(&status, "payments")["watermark_age_seconds"].as_f64().unwrap_or(f64::MAX);
    assert!(age < 1.0, "everything applied: the watermark is now ({age} s): {status}");
    Ok(())
}
