//! The gap-safe horizon waits only for transactions that can still append events:
//! appenders follow the append-lock protocol (the database refuses those that do not);
//! transactions in other databases, or writing other tables of this one, never hold the
//! read side back; and under a random mix of appenders that commit late or roll back,
//! non-appenders and writers elsewhere, the read models miss nothing and double nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventstore::{schema, EventStore, Metadata, PoolSettings};
use futures_util::future::join_all;
use ledger_tests::{expect_status, kafka_brokers, poll_until, TestApp, TestDatabase, TopicReader};
use projections::notifications::Notifications;
use projections::payments::Payments;
use projections::rebuild::{self, RebuildPhase, RebuildProgress, Settings, Target};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(60);

/// `INSERT INTO events` of a cancellation for a new stream, as the first or a later write.
const INSERT_EVENT: &str = "
    INSERT INTO events (stream_id, stream_version, event_id, event_type, event_version, payload)
    VALUES (gen_random_uuid(), 1, gen_random_uuid(), 'OrderCancelled', 1, '{\"reason\": \"test\"}')";

fn refused_for_the_protocol(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE)
        && error.as_db_error().is_some_and(|db| db.message().contains("append lock"))
}

#[tokio::test]
async fn an_append_after_another_write_without_the_append_lock_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let mut client = app.database.client().await?;
    client.batch_execute("CREATE TABLE scratch (n int)").await?;
    let before = app.event_count().await?;

    // Wrote something first, then appends: it may already be below a horizon.
    let transaction = client.transaction().await?;
    transaction.execute("INSERT INTO scratch VALUES (1)", &[]).await?;
    let error = transaction.execute(INSERT_EVENT, &[]).await.expect_err("refused");
    assert!(refused_for_the_protocol(&error), "{error:?}");
    transaction.rollback().await?;

    // Taking the lock late is refused the same way.
    let transaction = client.transaction().await?;
    transaction.execute("INSERT INTO scratch VALUES (2)", &[]).await?;
    let error = transaction.execute("SELECT ledger_append_lock()", &[]).await.expect_err("refused");
    assert!(refused_for_the_protocol(&error), "{error:?}");
    transaction.rollback().await?;

    // A savepoint rolled back drops the lock it took: the transaction has written, so it
    // cannot take it again.
    let transaction = client.transaction().await?;
    transaction.batch_execute("SAVEPOINT first").await?;
    transaction.execute(INSERT_EVENT, &[]).await?;
    transaction.batch_execute("ROLLBACK TO SAVEPOINT first").await?;
    let error = transaction.execute(INSERT_EVENT, &[]).await.expect_err("refused");
    assert!(refused_for_the_protocol(&error), "{error:?}");
    transaction.rollback().await?;

    // The protocol followed: the lock first, then anything; or the append as first write.
    let transaction = client.transaction().await?;
    transaction.execute("SELECT ledger_append_lock()", &[]).await?;
    transaction.execute("INSERT INTO scratch VALUES (3)", &[]).await?;
    transaction.execute(INSERT_EVENT, &[]).await?;
    transaction.commit().await?;
    let transaction = client.transaction().await?;
    transaction.execute(INSERT_EVENT, &[]).await?;
    // While it is open, another session sees it as an appender.
    let observer = app.database.client().await?;
    let appenders: i64 =
        observer.query_one("SELECT count(*) FROM ledger_appenders()", &[]).await?.get(0);
    assert_eq!(appenders, 1);
    transaction.execute("INSERT INTO scratch VALUES (4)", &[]).await?;
    transaction.commit().await?;

    assert_eq!(app.event_count().await?, before + 2, "only the two that followed it");
    let appenders: i64 =
        observer.query_one("SELECT count(*) FROM ledger_appenders()", &[]).await?.get(0);
    assert_eq!(appenders, 0, "the lock ends with its transaction");
    Ok(())
}

#[tokio::test]
async fn every_command_appends_under_the_append_lock() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let order_id = app.place_order("cus_lock").await?;
    // Freeze a capture mid-way: hold the order's stream lock so it waits after BEGIN.
    let holder = app.database.client().await?;
    let key = eventstore::stream_lock_key(order_id);
    holder.execute("SELECT pg_advisory_lock($1)", &[&key]).await?;
    let capture = tokio::spawn({
        let (http, url) = (app.http.clone(), app.url(&format!("/v1/orders/{order_id}/payments")));
        async move {
            http.post(url)
                .json(&serde_json::json!({ "payment_id": "pay_1", "amount_minor": 100, "method": "card" }))
                .send()
                .await
        }
    });
    app.database.until_a_session_waits_on_a_lock().await?;
    let waiting_appenders: i64 = holder
        .query_one(
            "SELECT count(*) FROM ledger_appenders() a
               JOIN pg_stat_activity s ON s.pid = a.pid
              WHERE s.wait_event_type = 'Lock'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(waiting_appenders, 1, "the waiting command holds the append lock already");
    holder.execute("SELECT pg_advisory_unlock($1)", &[&key]).await?;
    expect_status(capture.await??, 201).await?;
    Ok(())
}

/// Opens a transaction that has written to `table` and leaves it idle.
async fn idle_writer(
    database: &TestDatabase,
    table: &str,
) -> anyhow::Result<tokio_postgres::Client> {
    let client = database.client().await?;
    client.batch_execute(&format!("BEGIN; INSERT INTO {table} VALUES (1)")).await?;
    Ok(client)
}

/// Another application's database on the same server, with a table its batch jobs write.
async fn another_database() -> anyhow::Result<TestDatabase> {
    let database = TestDatabase::create_unrelated().await?;
    database.client().await?.batch_execute("CREATE TABLE batch_job (n int)").await?;
    Ok(database)
}

async fn still_open(client: &tokio_postgres::Client) -> anyhow::Result<bool> {
    Ok(client.query_one("SELECT pg_current_xact_id_if_assigned() IS NOT NULL", &[]).await?.get(0))
}

#[tokio::test]
async fn transactions_that_cannot_append_do_not_hold_the_read_side_back() -> anyhow::Result<()> {
    let app = TestApp::spawn_all(&kafka_brokers()).await?;
    let warm = app.place_order("cus_warm").await?;
    app.payments(warm, 1).await?;

    // One write transaction in another database of the server, and one idle in
    // transaction in the ledger's own database on a table that is not `events`.
    let elsewhere = another_database().await?;
    app.database.client().await?.batch_execute("CREATE TABLE reports (n int)").await?;
    let foreign = idle_writer(&elsewhere, "batch_job").await?;
    let local = idle_writer(&app.database, "reports").await?;

    for n in 0..10 {
        let order_id = app.place_order(&format!("cus_{n}")).await?;
        let version = TestApp::version_of(app.capture(order_id, "pay_1", 1000).await?).await?;
        // Read-your-writes answers (200, not 504 after 5 s) while both are open.
        let payments = app.payments(order_id, version).await?;
        assert_eq!(payments["captured"], 1000, "{payments}");
    }
    assert!(still_open(&foreign).await? && still_open(&local).await?, "both still open");
    let relay = app.relay_status().await?;
    assert_eq!(relay["store"]["backlog"], 0, "everything published: {relay}");
    assert!(relay["store"]["oldest_open_transaction_seconds"].is_null(), "no appender: {relay}");

    Ok(())
}

/// What the workers of the mix have done, so that a transaction held open can wait until
/// others have committed meanwhile, instead of for a while.
#[derive(Default)]
struct Progress {
    /// Transactions of the mix that ended.
    ended: AtomicU64,
    /// Workers holding a transaction open, waiting for others to end.
    holding: AtomicU64,
    /// Workers not finished yet.
    running: AtomicU64,
}

impl Progress {
    /// Waits until `others` more transactions of the mix have ended, or every running
    /// worker holds one open (none would end: they all go on).
    async fn hold_while_others_end(&self, others: u64) -> anyhow::Result<()> {
        let target = self.ended.load(Ordering::SeqCst) + others;
        self.holding.fetch_add(1, Ordering::SeqCst);
        let held = poll_until(DEADLINE, "later transactions to end meanwhile", || async {
            let ended = self.ended.load(Ordering::SeqCst) >= target;
            let all_holding =
                self.holding.load(Ordering::SeqCst) >= self.running.load(Ordering::SeqCst);
            Ok((ended || all_holding).then_some(()))
        })
        .await;
        self.holding.fetch_sub(1, Ordering::SeqCst);
        held
    }
}

/// One transaction of the mix, chosen by a seeded generator.
#[derive(Clone, Copy, Debug)]
enum Actor {
    /// Commands over HTTP: an order's lifecycle.
    Commands,
    /// An appender holding its transaction open while others end, then committing.
    LateCommit,
    /// An appender that rolls back (a hole in the positions).
    Rollback,
    /// A write in this database on another table, held open.
    NonAppender,
    /// A write in another database, held open.
    Elsewhere,
}

#[tokio::test]
async fn a_random_mix_of_transactions_loses_nothing_and_doubles_nothing() -> anyhow::Result<()> {
    let app = Arc::new(TestApp::spawn_all(&kafka_brokers()).await?);
    let seed = std::env::var("HORIZON_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("HORIZON_SEED={seed}");
    let elsewhere = Arc::new(another_database().await?);
    app.database.client().await?.batch_execute("CREATE TABLE reports (n int)").await?;
    let mut settings = PoolSettings::new(app.database.url.clone());
    settings.max_size = 8;
    let store = Arc::new(EventStore::new(eventstore::connect(&settings)?));

    // 8 workers, 60 transactions each: a couple of thousand events in all.
    let progress = Arc::new(Progress { running: AtomicU64::new(8), ..Progress::default() });
    let workers = (0..8u64).map(|worker| {
        let (app, store) = (app.clone(), store.clone());
        let (elsewhere, progress) = (elsewhere.clone(), progress.clone());
        async move {
            let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(worker));
            let mut last_versions: HashMap<Uuid, u32> = HashMap::new();
            for step in 0..60 {
                let actor = match rng.u8(..10) {
                    0..=3 => Actor::Commands,
                    4..=5 => Actor::LateCommit,
                    6 => Actor::Rollback,
                    7..=8 => Actor::NonAppender,
                    _ => Actor::Elsewhere,
                };
                // How many transactions of the other workers end while this one is open.
                let hold = rng.u64(0..4);
                match actor {
                    Actor::Commands => {
                        let order_id = app.place_order(&format!("cus_{worker}")).await?;
                        let mut version = 1;
                        for n in 0..rng.u32(1..12) {
                            let capture = app.capture(order_id, &format!("pay_{n}"), 100).await?;
                            version = TestApp::version_of(capture).await?;
                        }
                        last_versions.insert(order_id, version);
                    }
                    Actor::LateCommit | Actor::Rollback => {
                        let order_id = app.place_order(&format!("cus_{worker}")).await?;
                        let mut unit = store.begin(&[order_id]).await?;
                        let captured = schema::encode(&domain::Event::PaymentCaptured(
                            domain::PaymentCaptured {
                                payment_id: domain::PaymentId::parse(&format!("pay_late_{step}"))?,
                                amount: domain::Money::new(250, domain::Currency::parse("EUR")?),
                                method: domain::PaymentMethod::parse("card")?,
                                provider_reference: None,
                            },
                        ))?;
                        unit.append_to_stream(order_id, 1, &[captured], &Metadata::default())
                            .await?;
                        // Later transactions commit meanwhile (the other workers).
                        progress.hold_while_others_end(hold).await?;
                        if matches!(actor, Actor::LateCommit) {
                            unit.commit().await?;
                            last_versions.insert(order_id, 2);
                        } else {
                            unit.rollback().await?;
                            last_versions.insert(order_id, 1);
                        }
                    }
                    Actor::NonAppender | Actor::Elsewhere => {
                        let client = if matches!(actor, Actor::NonAppender) {
                            idle_writer(&app.database, "reports").await?
                        } else {
                            idle_writer(&elsewhere, "batch_job").await?
                        };
                        progress.hold_while_others_end(hold).await?;
                        client
                            .batch_execute(if rng.bool() { "COMMIT" } else { "ROLLBACK" })
                            .await?;
                    }
                }
                progress.ended.fetch_add(1, Ordering::SeqCst);
            }
            progress.running.fetch_sub(1, Ordering::SeqCst);
            anyhow::Ok(last_versions)
        }
    });
    let mut orders: HashMap<Uuid, u32> = HashMap::new();
    for outcome in join_all(workers).await {
        orders.extend(outcome?);
    }

    // Every order reaches its last version in both read models...
    for (order_id, version) in &orders {
        app.payments(*order_id, *version).await?;
        let query = format!("order_id={order_id}&min_version={version}&wait_ms=5000");
        app.notifications(&query).await?;
    }
    // ...and the read models are exactly what a replay of the store makes: nothing
    // skipped, nothing applied twice.
    let pool = app.database.pool()?;
    let client = pool.get().await?;
    let everything = Target::Cut(eventstore::Cut::Position(i64::MAX));
    let cancelled = tokio_util::sync::CancellationToken::new;
    let progress = RebuildProgress::default;
    let rebuilt = rebuild::rebuild(
        &pool,
        &Payments,
        everything,
        Settings::with_batch(500),
        progress(),
        cancelled(),
    )
    .await?;
    assert_eq!(rebuilt.state, RebuildPhase::Done);
    let rebuilt = rebuild::rebuild(
        &pool,
        &Notifications,
        everything,
        Settings::with_batch(500),
        progress(),
        cancelled(),
    )
    .await?;
    assert_eq!(rebuilt.state, RebuildPhase::Done);
    assert!(rebuild::generation_equals_live(&client, &Payments).await?, "payments differ");
    assert!(
        rebuild::generation_equals_live(&client, &Notifications).await?,
        "notifications differ"
    );

    // The topic holds every stored event, each stream in order.
    let stored: std::collections::HashSet<Uuid> = client
        .query("SELECT event_id FROM events", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(stored.len() > 1000, "a few thousand events: {}", stored.len());
    let mut reader = TopicReader::new(&app.kafka).await?;
    reader
        .read_until(DEADLINE, "every stored event", |messages| {
            let seen: std::collections::HashSet<Uuid> =
                messages.iter().map(|m| m.envelope.event_id).collect();
            stored.is_subset(&seen)
        })
        .await?;
    assert_eq!(reader.event_ids(), stored, "nothing but stored events");
    let mut seen = std::collections::HashSet::new();
    let mut versions: HashMap<Uuid, Vec<u32>> = HashMap::new();
    for message in &reader.messages {
        if seen.insert(message.envelope.event_id) {
            versions
                .entry(message.envelope.stream_id)
                .or_default()
                .push(message.envelope.stream_version);
        }
    }
    for (stream, versions) in versions {
        let expected: Vec<u32> = (1..=versions.len() as u32).collect();
        assert_eq!(versions, expected, "stream {stream} arrived out of order (seed {seed})");
    }

    Ok(())
}
