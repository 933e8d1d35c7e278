//! Rebuilding a projection by replaying the event store: the new generation equals the
//! live one row for row; the swap happens while commands and queries go on, which never
//! see an empty or a doubled read model; a rebuild killed midway leaves the live one
//! serving, and the next one completes; a swap leaves delivery statuses alone; payments
//! written before `V012` read, once it has run, as a replay writes them.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventstore::Cut;
use ledger_tests::{expect_json, expect_status, kafka_brokers, poll_until, TestApp};
use projections::notifications::Notifications;
use projections::payments::Payments;
use projections::rebuild::{self, RebuildPhase, RebuildProgress, Settings, Target};
use projections::ProjectionKind;
use serde_json::Value;
use uuid::Uuid;

/// A few lifecycles: placed, partly and fully paid, refunded, failed, cancelled, shipped.
/// Returns every order and its last stream version.
async fn history(app: &TestApp, orders: usize) -> anyhow::Result<Vec<(Uuid, u32)>> {
    let mut placed = Vec::new();
    for n in 0..orders {
        let order_id = app.place_order(&format!("cus_{}", n % 4)).await?;
        let mut last = 1;
        let steps: Vec<reqwest::Response> = match n % 4 {
            0 => vec![app.capture(order_id, "pay_1", 1000).await?],
            1 => vec![
                app.capture(order_id, "pay_1", 3000).await?,
                app.refund(order_id, "ref_1", "pay_1", 500).await?,
                app.ship(order_id).await?,
            ],
            2 => {
                vec![app.fail_payment(order_id, "pay_1", 3000).await?, app.cancel(order_id).await?]
            }
            _ => vec![],
        };
        for step in steps {
            last = TestApp::version_of(step).await?;
        }
        placed.push((order_id, last));
    }
    Ok(placed)
}

async fn caught_up(app: &TestApp, orders: &[(Uuid, u32)]) -> anyhow::Result<()> {
    for (order_id, version) in orders {
        app.payments(*order_id, *version).await?;
        let query = format!("order_id={order_id}&min_version={version}&wait_ms=5000");
        app.notifications(&query).await?;
    }
    Ok(())
}

/// An order placed by an older release: a version 1 `OrderPlaced`, stored as it was.
async fn place_v1_order(app: &TestApp) -> anyhow::Result<Uuid> {
    let order_id = Uuid::now_v7();
    let mut payload: Value =
        serde_json::from_str(include_str!("../../eventstore/tests/fixtures/v1/OrderPlaced.json"))?;
    payload["order_id"] = Value::from(order_id.to_string());
    app.database
        .client()
        .await?
        .execute(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, event_version, payload)
             VALUES ($1, 1, $2, 'OrderPlaced', 1, $3)",
            &[&order_id, &Uuid::now_v7(), &payload],
        )
        .await?;
    Ok(order_id)
}

#[tokio::test]
async fn a_rebuilt_generation_equals_the_live_one_row_for_row() -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    // Mixed versions: an order from an older release, then commands on it today.
    let old = place_v1_order(&app).await?;
    let captured = TestApp::version_of(app.capture(old, "pay_old", 100).await?).await?;
    let mut orders = vec![(old, captured)];
    orders.extend(history(&app, 12).await?);
    caught_up(&app, &orders).await?;
    let pool = app.database.pool()?;
    let client = pool.get().await?;

    // Built as of "everything" and kept beside the live tables: identical to them.
    let everything = Target::Cut(Cut::Position(i64::MAX));
    let cancelled = tokio_util::sync::CancellationToken::new();
    let status = rebuild::rebuild(
        &pool,
        &Payments,
        everything,
        Settings::with_batch(7),
        RebuildProgress::default(),
        cancelled.clone(),
    )
    .await?;
    assert_eq!(status.state, RebuildPhase::Done);
    assert!(status.replayed >= 12 * 2, "replayed {status:?}");
    assert!(rebuild::generation_equals_live(&client, &Payments).await?, "payments differ");
    rebuild::rebuild(
        &pool,
        &Notifications,
        everything,
        Settings::with_batch(7),
        RebuildProgress::default(),
        cancelled,
    )
    .await?;
    assert!(
        rebuild::generation_equals_live(&client, &Notifications).await?,
        "notifications differ"
    );

    // As of a past position: only what the events up to it made.
    let first_order = orders[1].0;
    let placed_at: i64 = client
        .query_one(
            "SELECT global_position FROM events WHERE stream_id = $1 AND stream_version = 1",
            &[&first_order],
        )
        .await?
        .get(0);
    let cancelled = tokio_util::sync::CancellationToken::new();
    rebuild::rebuild(
        &pool,
        &Payments,
        Target::Cut(Cut::Position(placed_at)),
        Settings::with_batch(7),
        RebuildProgress::default(),
        cancelled,
    )
    .await?;
    let rows: Vec<(Uuid, i64)> = client
        .query("SELECT order_id, captured FROM rebuild_payments.payments", &[])
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let rows: BTreeSet<(Uuid, i64)> = rows.into_iter().collect();
    let expected: BTreeSet<(Uuid, i64)> = [(old, 100), (first_order, 0)].into_iter().collect();
    assert_eq!(rows, expected, "as of the second order's placement: the old one paid 100");
    Ok(())
}

/// The bulk replay forgets an order once it has been quiet for the replay's window and
/// applies the events of any that come back through `apply`, once the bulk rows exist:
/// with a window of three events nearly every order is forgotten and half of them come
/// back, and the generation still equals the live one; swapped in, it answers every
/// order at its last version.
#[tokio::test]
async fn a_rebuild_that_forgets_quiet_orders_still_equals_the_live_one() -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let mut orders = history(&app, 12).await?;
    // Late events for orders long quiet: a refund for those paid, a capture for those only
    // placed.
    for (n, (order_id, version)) in orders.iter_mut().enumerate() {
        let late = match n % 4 {
            0 => app.refund(*order_id, "ref_late", "pay_1", 100).await?,
            3 => app.capture(*order_id, "pay_late", 700).await?,
            _ => continue,
        };
        *version = TestApp::version_of(late).await?;
    }
    caught_up(&app, &orders).await?;
    let pool = app.database.pool()?;
    let client = pool.get().await?;
    let forgetful = Settings { batch: 4, window: 3 };

    let everything = Target::Cut(Cut::Position(i64::MAX));
    let cancelled = tokio_util::sync::CancellationToken::new;
    let payments = rebuild::rebuild(
        &pool,
        &Payments,
        everything,
        forgetful,
        RebuildProgress::default(),
        cancelled(),
    )
    .await?;
    assert_eq!(payments.state, RebuildPhase::Done);
    assert!(payments.orders_evicted >= 10, "{payments:?}");
    assert_eq!(payments.orders_revived, 6, "{payments:?}");
    assert!(rebuild::generation_equals_live(&client, &Payments).await?, "payments differ");
    let notifications = rebuild::rebuild(
        &pool,
        &Notifications,
        everything,
        forgetful,
        RebuildProgress::default(),
        cancelled(),
    )
    .await?;
    assert_eq!(notifications.orders_revived, 6, "{notifications:?}");
    assert!(
        rebuild::generation_equals_live(&client, &Notifications).await?,
        "notifications differ"
    );

    let live = rebuild::rebuild(
        &pool,
        &Payments,
        Target::Live,
        forgetful,
        RebuildProgress::default(),
        cancelled(),
    )
    .await?;
    assert_eq!(live.state, RebuildPhase::Done);
    assert_eq!(live.orders_revived, 6, "{live:?}");
    caught_up(&app, &orders).await
}

/// Payments as releases before `V012` left them: a version for every event, and each
/// order's row naming its last event, whether it changed the payments or not.
const BEFORE_V012: &str = "
    INSERT INTO payment_versions (order_id, stream_version, position, recorded_at, customer_id,
                                  currency, amount_due, captured, refunded, cancelled, placed_position)
    SELECT e.stream_id, e.stream_version, e.global_position, e.recorded_at, v.customer_id,
           v.currency, v.amount_due, v.captured, v.refunded, v.cancelled, v.placed_position
      FROM events e
      JOIN LATERAL (SELECT * FROM payment_versions v
                     WHERE v.order_id = e.stream_id AND v.stream_version < e.stream_version
                     ORDER BY v.stream_version DESC LIMIT 1) v ON true
     WHERE e.event_type IN ('OrderFullyPaid', 'OrderShipped');
    UPDATE payment_versions v
       SET next_position = e.global_position, next_recorded_at = e.recorded_at
      FROM events e
     WHERE e.stream_id = v.order_id AND e.stream_version = v.stream_version + 1;
    UPDATE payments p SET stream_version = e.stream_version, updated_at = e.recorded_at
      FROM events e
     WHERE e.stream_id = p.order_id
       AND e.stream_version = (SELECT max(stream_version) FROM events WHERE stream_id = p.order_id);";

#[tokio::test]
async fn upgrading_past_v012_leaves_payments_as_a_replay_writes_them() -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let orders = history(&app, 8).await?;
    caught_up(&app, &orders).await?;
    let pool = app.database.pool()?;
    let client = pool.get().await?;
    let count = "SELECT count(*) FROM payment_versions";
    let current: i64 = client.query_one(count, &[]).await?.get(0);
    client.batch_execute(BEFORE_V012).await?;
    let before: i64 = client.query_one(count, &[]).await?.get(0);
    assert!(before > current, "the old shape has more versions: {before} against {current}");

    client
        .batch_execute(include_str!("../../migrations/V012__payment_versions_only_for_changes.sql"))
        .await?;

    let after: i64 = client.query_one(count, &[]).await?.get(0);
    assert_eq!(after, current);
    let cancelled = tokio_util::sync::CancellationToken::new();
    let everything = Target::Cut(Cut::Position(i64::MAX));
    rebuild::rebuild(
        &pool,
        &Payments,
        everything,
        Settings::with_batch(5),
        RebuildProgress::default(),
        cancelled,
    )
    .await?;
    assert!(rebuild::generation_equals_live(&client, &Payments).await?, "payments differ");
    Ok(())
}

#[tokio::test]
async fn a_rebuild_swaps_in_while_commands_and_queries_go_on() -> anyhow::Result<()> {
    let app = Arc::new(TestApp::spawn_all(&kafka_brokers()).await?);
    let before = history(&app, 16).await?;
    caught_up(&app, &before).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let placed = Arc::new(AtomicUsize::new(before.len()));
    // Queries during the rebuild: never empty, never more orders than were placed, never
    // an order twice.
    let reader = {
        let (app, stop, placed) = (app.clone(), stop.clone(), placed.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            let mut seen = 0;
            while !stop.load(Ordering::SeqCst) {
                let page =
                    expect_json(app.get("/v1/payments?limit=500").send().await?, 200).await?;
                // Read after the answer: orders placed while the query ran may be in it.
                let known = placed.load(Ordering::SeqCst);
                let ids: Vec<&str> = page["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["order_id"].as_str())
                    .collect();
                let distinct: BTreeSet<&str> = ids.iter().copied().collect();
                anyhow::ensure!(distinct.len() == ids.len(), "an order listed twice");
                anyhow::ensure!(
                    ids.len() >= seen,
                    "orders disappeared: {} after {seen}",
                    ids.len()
                );
                anyhow::ensure!(
                    ids.len() <= known + 1,
                    "more orders than placed: {} > {known}",
                    ids.len()
                );
                seen = ids.len();
                reads += 1;
            }
            Ok::<_, anyhow::Error>(reads)
        })
    };
    let writer = {
        let (app, stop, placed) = (app.clone(), stop.clone(), placed.clone());
        tokio::spawn(async move {
            let mut orders = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let order_id = app.place_order("cus_during").await?;
                placed.fetch_add(1, Ordering::SeqCst);
                let version =
                    TestApp::version_of(app.capture(order_id, "pay_1", 3000).await?).await?;
                orders.push((order_id, version));
            }
            Ok::<_, anyhow::Error>(orders)
        })
    };

    let started = app.post("/v1/admin/projections/payments/rebuild").send().await?;
    expect_status(started, 202).await?;
    let again = app.post("/v1/admin/projections/payments/rebuild").send().await?;
    assert_eq!(expect_json(again, 409).await?["code"], "rebuild_running");
    let status = poll_until(Duration::from_secs(30), "the rebuild to finish", || async {
        let view = expect_json(app.get("/v1/admin/projections").send().await?, 200).await?;
        let rebuild = view["rebuilds"][0].clone();
        Ok(matches!(rebuild["state"].as_str(), Some("done" | "failed")).then_some(rebuild))
    })
    .await?;
    assert_eq!(status["state"], "done", "{status}");
    // Keep writing a little after the swap: the live worker goes on in the new tables.
    let after = app.place_order("cus_after").await?;
    stop.store(true, Ordering::SeqCst);
    let reads = reader.await??;
    let mut during = writer.await??;
    assert!(reads > 0 && !during.is_empty(), "{reads} reads, {} orders during", during.len());
    during.push((after, 1));

    let all: Vec<(Uuid, u32)> = before.iter().copied().chain(during.iter().copied()).collect();
    caught_up(&app, &all).await?;
    for (order_id, _) in &during[..during.len() - 1] {
        let payments: Value = app.payments(*order_id, 3).await?;
        assert_eq!(payments["status"], "paid", "{payments}");
        assert_eq!(
            payments["attempts"].as_array().map(Vec::len),
            Some(1),
            "exactly once: {payments}"
        );
    }
    let page = expect_json(app.get("/v1/payments?limit=500").send().await?, 200).await?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(all.len()));
    // The swapped-in tables kept the names migrations know them by, and nothing is left over.
    let client = app.database.client().await?;
    let index: Option<String> = client
        .query_one("SELECT to_regclass('public.payments_by_customer')::text", &[])
        .await?
        .get(0);
    assert_eq!(index.as_deref(), Some("payments_by_customer"));
    // The projection's applied versions are the new generation's partition, attached in the
    // swap, and the live worker kept writing to it.
    let row = client
        .query_one(
            "SELECT (SELECT inhparent::regclass::text FROM pg_inherits
                      WHERE inhrelid = 'public.projection_streams_payments'::regclass),
                    (SELECT count(*) FROM projection_streams WHERE projection = 'payments')",
            &[],
        )
        .await?;
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("projection_streams"));
    assert_eq!(row.get::<_, i64>(1), i64::try_from(all.len())?, "one applied version per order");
    let leftovers: i64 = client
        .query_one("SELECT count(*) FROM pg_namespace WHERE nspname IN ('rebuild_payments', 'retired_payments')", &[])
        .await?
        .get(0);
    assert_eq!(leftovers, 0);
    Ok(())
}

#[tokio::test]
async fn a_swap_leaves_every_notification_with_the_delivery_status_it_had() -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let orders = history(&app, 4).await?;
    caught_up(&app, &orders).await?;
    let (delivered, pending) = (orders[1].0, orders[0].0);
    // Delivery is not an event: record it as a dispatcher would.
    let client = app.database.client().await?;
    let sent = client
        .execute(
            "INSERT INTO notification_deliveries (id, status)
             SELECT id, 'delivered' FROM notifications WHERE order_id = $1",
            &[&delivered],
        )
        .await?;
    assert!(sent >= 3, "placed, captured, refunded, shipped: {sent}");

    let cancelled = tokio_util::sync::CancellationToken::new();
    let pool = app.database.pool()?;
    let status = rebuild::rebuild(
        &pool,
        &Notifications,
        Target::Live,
        Settings::with_batch(2),
        RebuildProgress::default(),
        cancelled,
    )
    .await?;
    assert_eq!(status.state, RebuildPhase::Done);

    let statuses = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n["status"].as_str().unwrap_or("missing").to_owned())
            .collect()
    };
    let page = app.notifications(&format!("order_id={delivered}")).await?;
    assert_eq!(statuses(&page), vec!["delivered"; usize::try_from(sent)?], "{page}");
    let page = app.notifications(&format!("order_id={pending}")).await?;
    assert_eq!(statuses(&page), ["pending", "pending"], "{page}");
    // Filtering by status reads the deliveries too.
    let page = app.notifications(&format!("order_id={delivered}&status=pending")).await?;
    assert_eq!(statuses(&page), Vec::<String>::new(), "{page}");
    Ok(())
}

#[tokio::test]
async fn a_rebuild_killed_midway_leaves_the_live_generation_serving_and_the_next_completes(
) -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let orders = history(&app, 24).await?;
    caught_up(&app, &orders).await?;
    let live = expect_json(app.get("/v1/payments?limit=500").send().await?, 200).await?;
    let pool = app.database.pool()?;

    // Small batches, so there is a "midway"; the task is aborted like a killed process.
    let running =
        rebuild::start_with(&pool, ProjectionKind::Payments, Target::Live, Settings::with_batch(3));
    poll_until(Duration::from_secs(10), "the replay to be under way", || async {
        Ok((running.progress.snapshot().replayed >= 9).then_some(()))
    })
    .await?;
    running.task.abort();
    let _ = running.task.await;

    let during = expect_json(app.get("/v1/payments?limit=500").send().await?, 200).await?;
    assert_eq!(during, live, "the live generation is untouched and serving");

    // The aborted task's connection is closed from this side at once; the server lets go
    // of its session's rebuild lock once its backend has noticed, as after a killed
    // process. Until then a new rebuild is refused as running, so it starts after that.
    let probe = pool.get().await?;
    poll_until(Duration::from_secs(10), "the aborted rebuild's lock to be let go", || async {
        let free: bool = probe
            .query_one("SELECT pg_try_advisory_lock(hashtext('ledger-rebuild:payments'))", &[])
            .await?
            .get(0);
        if free {
            probe
                .execute("SELECT pg_advisory_unlock(hashtext('ledger-rebuild:payments'))", &[])
                .await?;
        }
        Ok(free.then_some(()))
    })
    .await?;
    drop(probe);

    let running = rebuild::start(&pool, ProjectionKind::Payments, Target::Live);
    let status = running.task.await??;
    assert_eq!(status.state, RebuildPhase::Done);
    let after = expect_json(app.get("/v1/payments?limit=500").send().await?, 200).await?;
    assert_eq!(after, live, "the rebuilt generation answers the same");
    let client = pool.get().await?;
    let newest: i64 =
        client.query_one("SELECT max(global_position) FROM events", &[]).await?.get(0);
    let watermark = projections::watermark::read(&client, "payments").await?;
    assert_eq!(watermark.position, newest, "the swapped-in watermark covers the whole store");
    let phases: Vec<RebuildPhase> = status.phases.iter().map(|p| p.phase).collect();
    use RebuildPhase::{CatchingUp, Indexing, Replaying, Swapping, Watermark};
    assert_eq!(
        phases,
        [Replaying, Indexing, Watermark, CatchingUp, Swapping],
        "every phase is timed, in order"
    );
    // Analysed before the swap, and the table with the covering index vacuumed: its pages
    // are all visible to index-only scans, and the planner has statistics, from the first
    // query on.
    let row = client
        .query_one(
            "SELECT relpages, relallvisible FROM pg_class WHERE oid = 'public.payment_versions'::regclass",
            &[],
        )
        .await?;
    let (pages, visible): (i32, i32) = (row.get(0), row.get(1));
    assert!(pages > 0 && visible == pages, "{visible} of {pages} pages all-visible");
    let analysed: i64 = client
        .query_one(
            "SELECT count(DISTINCT tablename) FROM pg_stats WHERE schemaname = 'public'
                AND tablename IN ('payments', 'payment_attempts', 'payment_versions')",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(analysed, 3, "every table of the new generation has planner statistics");
    Ok(())
}

#[tokio::test]
async fn a_rebuild_process_killed_midway_leaves_the_live_generation_and_a_rerun_completes(
) -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let orders = history(&app, 24).await?;
    caught_up(&app, &orders).await?;
    let live = expect_json(app.get("/v1/payments?limit=500").send().await?, 200).await?;
    let ledger = ledger_tests::process::ledger_binary()?;
    let rebuild_command = |batch: &str| {
        let mut command = tokio::process::Command::new(&ledger);
        command
            .args(["projections", "rebuild", "payments", "--batch-size", batch])
            .args(["--database-url", &app.database.url])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    };

    // One event per transaction, so the process is surely midway when it is killed.
    let mut process = rebuild_command("1").spawn()?;
    let client = app.database.client().await?;
    poll_until(Duration::from_secs(20), "the rebuild to be under way", || async {
        let replayed = client
            .query_one("SELECT count(*) FROM rebuild_payments.payment_versions", &[])
            .await
            .map_or(0, |row| row.get::<_, i64>(0));
        Ok((replayed >= 3).then_some(()))
    })
    .await?;
    process.start_kill()?; // SIGKILL
    let killed = process.wait().await?;
    assert!(!killed.success(), "killed midway, not finished: {killed:?}");

    let during = expect_json(app.get("/v1/payments?limit=500").send().await?, 200).await?;
    assert_eq!(during, live, "the live generation is untouched and serving");

    let rerun =
        tokio::time::timeout(Duration::from_secs(60), rebuild_command("10000").status()).await??;
    assert!(rerun.success(), "the rerun completes: {rerun:?}");
    let after = expect_json(app.get("/v1/payments?limit=500").send().await?, 200).await?;
    assert_eq!(after, live, "the rebuilt generation answers the same");
    let leftover: Option<String> =
        client.query_one("SELECT to_regnamespace('rebuild_payments')::text", &[]).await?.get(0);
    assert_eq!(leftover, None, "the rebuild schema is gone after the swap");
    Ok(())
}

#[tokio::test]
async fn a_watermark_advanced_over_the_events_a_replay_applied_stops_at_the_first_it_did_not(
) -> anyhow::Result<()> {
    use eventstore::position::{read_committed_after, CommitPosition};
    use projections::watermark;

    let app = TestApp::spawn().await?;
    for n in 0..6 {
        app.place_order(&format!("cus_{n}")).await?;
    }
    let pool = app.database.pool()?;
    let client = pool.get().await?;
    // A hole in the positions, as an append rolled back leaves, then two more events.
    client
        .query_one("SELECT nextval(pg_get_serial_sequence('events', 'global_position'))", &[])
        .await?;
    for n in 6..8 {
        app.place_order(&format!("cus_{n}")).await?;
    }
    // Below the gap-safe horizon once no transaction that began before their commits is
    // still running, on this server (other specs' included).
    let events = poll_until(Duration::from_secs(30), "eight events below the horizon", || async {
        let events = read_committed_after(&client, CommitPosition::default(), 100).await?;
        Ok((events.len() == 8).then_some(events))
    })
    .await?;
    let position = |n: usize| events[n].commit.global_position;
    assert_eq!(position(6), position(5) + 2, "a hole between the sixth event and the seventh");
    let known = |events: &[eventstore::position::CommittedEvent]| {
        let mut positions = projections::positions::Positions::default();
        events.iter().for_each(|e| positions.insert(e.commit.global_position));
        positions
    };

    // A replay that read four events: the watermark stops before the fifth.
    let four =
        watermark::advance_over(&client, "probe", &known(&events[..4]), events[3].commit).await?;
    assert_eq!(four.position, position(4) - 1, "up to the first event not applied");
    assert!(four.complete_through < events[4].recorded_at);

    // Having read everything, it covers the store, over the hole (nothing can fill it any
    // more), as a lookup of each event would.
    let all = watermark::advance_over(&client, "probe", &known(&events), events[7].commit).await?;
    assert_eq!(all.position, position(7));
    assert!(all.complete_through >= events[7].recorded_at);
    client
        .execute(
            "INSERT INTO projection_streams (projection, stream_id, stream_version)
             SELECT 'lookup', stream_id, max(stream_version) FROM events GROUP BY stream_id",
            &[],
        )
        .await?;
    let looked_up = watermark::advance(&client, "lookup").await?;
    assert_eq!(looked_up.position, all.position);
    Ok(())
}
