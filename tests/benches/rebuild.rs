//! Projection rebuild rate from the event store next to a raw ordered read of the same
//! events, and point-in-time query latency, at several history sizes, in the same run.
//!
//! `cargo bench -p ledger-tests --bench rebuild` (needs PostgreSQL only; `BENCH_EVENTS`
//! is a comma list of history sizes, default `100000,1000000`; `BENCH_REQUESTS` the
//! requests per query kind, default 2000; `BENCH_ROUNDS` how many times both rebuilds run
//! per size, each time between two baseline reads, default 1; `BENCH_KEEP_DATABASE=1`
//! keeps the databases for investigation).
//!
//! Per size: a fresh database is filled with orders' lifecycles in plain SQL
//! ([`ledger_tests::lifecycles`]). Then, on the same
//! table: the raw reads in commit order (`COPY … TO STDOUT`, the baseline, read again
//! after the rebuilds and the faster read kept; one `SELECT`;
//! keyset batches from the `events_commit_order` index; the rebuild's own read path,
//! `replay_committed_after` plus parsing and upcasting), both rebuilds (replay, then swap),
//! and the point-in-time queries and their latest counterparts through the real HTTP API
//! in this process, at random cuts, one request at a time.

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use bench::measure::{env_or, percentile};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use eventstore::position::{replay_committed_after, CommitPosition, ReplayedEvent};
use eventstore::Pool;
use futures_util::StreamExt;
use ledger_tests::lifecycles::{self, CUSTOMERS};
use ledger_tests::TestDatabase;
use projections::rebuild::{RebuildProgress, Settings, Target, BATCH, READ_CHUNK};
use projections::Projection;
use uuid::Uuid;

/// The columns the relay and the rebuild read (`eventstore::position`), in commit order.
/// Ordered by `events.tx_id`, qualified: a bare `tx_id` in `ORDER BY` names the *output*
/// column `tx_id::text::bigint`, which no index provides, so a batch would sort every event
/// after its cursor instead of reading `events_commit_order` up to its limit.
const COMMITTED_COLUMNS: &str = "
    SELECT tx_id::text::bigint, global_position, stream_id, stream_version, event_id,
           event_type, event_version, payload::text, metadata->>'correlation_id',
           metadata->>'causation_id', recorded_at
      FROM events";

const COPY_ORDERED: &str = "
    COPY (SELECT global_position, stream_id, stream_version, event_type, event_version, payload,
                 recorded_at
            FROM events ORDER BY tx_id, global_position) TO STDOUT";

fn per_second(events: u64, took: Duration) -> f64 {
    events as f64 / took.as_secs_f64().max(1e-9)
}

/// SplitMix64: repeatable random cuts without another dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// The history as the queries need it.
struct History {
    events: i64,
    /// Every order with the position of its placement, in position order.
    orders: Vec<(Uuid, i64)>,
    first_recorded_at: DateTime<Utc>,
    last_recorded_at: DateTime<Utc>,
    max_position: i64,
    generated_in: Duration,
}

impl History {
    fn position(&self, random: &mut Random) -> i64 {
        1 + i64::try_from(random.below(self.max_position.unsigned_abs())).unwrap_or(0)
    }

    fn time(&self, random: &mut Random) -> DateTime<Utc> {
        let span = (self.last_recorded_at - self.first_recorded_at).num_microseconds().unwrap_or(0);
        let offset = i64::try_from(random.below(span.unsigned_abs() + 1)).unwrap_or(0);
        self.first_recorded_at + chrono::Duration::microseconds(offset)
    }

    /// An order placed at or before `position` (so it exists at that cut).
    fn order_at(&self, random: &mut Random, position: i64) -> Uuid {
        let placed = self.orders.partition_point(|(_, at)| *at <= position).max(1);
        self.orders[random.below(placed as u64) as usize].0
    }

    fn any_order(&self, random: &mut Random) -> Uuid {
        self.orders[random.below(self.orders.len() as u64) as usize].0
    }
}

fn customer(random: &mut Random) -> String {
    format!("cus_{}", random.below(CUSTOMERS.unsigned_abs()))
}

async fn generate(client: &tokio_postgres::Client, target: i64) -> anyhow::Result<History> {
    let generated_in = lifecycles::generate(client, target).await?;

    let row = client
        .query_one(
            "SELECT count(*), max(global_position), min(recorded_at), max(recorded_at) FROM events",
            &[],
        )
        .await?;
    let placements = client
        .query(
            "SELECT stream_id, global_position FROM events WHERE stream_version = 1
              ORDER BY global_position",
            &[],
        )
        .await?;
    Ok(History {
        events: row.get(0),
        max_position: row.get(1),
        first_recorded_at: row.get(2),
        last_recorded_at: row.get(3),
        orders: placements.iter().map(|r| (r.get(0), r.get(1))).collect(),
        generated_in,
    })
}

struct Reads {
    copy: Duration,
    copy_megabytes: f64,
    /// One `SELECT` of every event in commit order, rows decoded into Rust values.
    select: Duration,
    /// Keyset batches of `BATCH` in commit order read from the index, rows decoded.
    keyset: Duration,
    /// The rebuild's own read path: `replay_committed_after` statements of `READ_CHUNK`,
    /// rows streamed, each payload parsed and upcast, nothing written.
    rebuild_read: Duration,
}

/// One row of [`COMMITTED_COLUMNS`] as Rust values; returns its commit position.
fn decode_row(row: &tokio_postgres::Row) -> anyhow::Result<CommitPosition> {
    let columns: (i64, i64, Uuid, i32, Uuid, String, i16, String) = (
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        row.try_get(7)?,
    );
    let tail: (Option<String>, Option<String>, DateTime<Utc>) =
        (row.try_get(8)?, row.try_get(9)?, row.try_get(10)?);
    let commit = CommitPosition { tx_id: columns.0, global_position: columns.1 };
    std::hint::black_box((columns, tail));
    Ok(commit)
}

/// The baseline: the events in commit order through `COPY … TO STDOUT`; how long it took
/// and how many bytes it sent.
async fn copy_read(
    client: &tokio_postgres::Client,
    events: i64,
) -> anyhow::Result<(Duration, usize)> {
    let expected = events.unsigned_abs();
    let started = Instant::now();
    let mut copy = std::pin::pin!(client.copy_out(COPY_ORDERED).await?);
    let (mut rows, mut bytes) = (0u64, 0usize);
    while let Some(chunk) = copy.next().await {
        let chunk = chunk?;
        bytes += chunk.len();
        rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    anyhow::ensure!(rows == expected, "COPY returned {rows} rows of {expected}");
    Ok((started.elapsed(), bytes))
}

async fn raw_reads(client: &tokio_postgres::Client, events: i64) -> anyhow::Result<Reads> {
    let expected = events.unsigned_abs();
    let (copy, bytes) = copy_read(client, events).await?;

    let started = Instant::now();
    let query = format!("{COMMITTED_COLUMNS} ORDER BY events.tx_id, events.global_position");
    let mut stream = std::pin::pin!(client.query_raw(&query, std::iter::empty::<i64>()).await?);
    let mut rows = 0u64;
    while let Some(row) = stream.next().await {
        decode_row(&row?)?;
        rows += 1;
    }
    let select = started.elapsed();
    anyhow::ensure!(rows == expected, "SELECT returned {rows} rows of {expected}");

    let started = Instant::now();
    let statement = client
        .prepare(&format!(
            "{COMMITTED_COLUMNS}
              WHERE (tx_id, global_position) > ($1::bigint::text::xid8, $2)
                AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
              ORDER BY events.tx_id, events.global_position
              LIMIT $3"
        ))
        .await?;
    let mut after = CommitPosition::default();
    let mut rows = 0u64;
    loop {
        let batch =
            client.query(&statement, &[&after.tx_id, &after.global_position, &BATCH]).await?;
        for row in &batch {
            after = decode_row(row)?;
        }
        rows += batch.len() as u64;
        if (batch.len() as i64) < BATCH {
            break;
        }
    }
    let keyset = started.elapsed();
    anyhow::ensure!(rows == expected, "the keyset batches returned {rows} rows of {expected}");

    let started = Instant::now();
    let mut after = CommitPosition::default();
    let mut rows = 0u64;
    loop {
        let mut batch = std::pin::pin!(replay_committed_after(client, after, READ_CHUNK).await?);
        let mut read = 0;
        while let Some(row) = batch.next().await {
            let row = row?;
            let event = ReplayedEvent::from_row(&row)?;
            after = event.commit;
            std::hint::black_box(eventstore::schema::decode_str(
                event.event_type,
                event.event_version,
                event.payload,
            )?);
            read += 1;
        }
        rows += read;
        if (read as i64) < READ_CHUNK {
            break;
        }
    }
    let rebuild_read = started.elapsed();
    anyhow::ensure!(rows == expected, "replay_committed_after returned {rows} rows of {expected}");
    Ok(Reads { copy, copy_megabytes: bytes as f64 / 1e6, select, keyset, rebuild_read })
}

struct Rebuilt {
    /// From the call to its return: create the generation, replay, swap.
    took: Duration,
    /// The replay alone, as the rebuild reports it.
    replay_per_second: f64,
    phases: Vec<projections::rebuild::PhaseTime>,
    /// Vacuuming the swapped-in tables afterwards, as autovacuum would in the background.
    vacuum: Duration,
    /// This process's peak resident memory while the rebuild ran, in MiB.
    peak_rss_mib: f64,
}

async fn rebuild<P: Projection>(
    pool: &Pool,
    projection: &P,
    events: i64,
) -> anyhow::Result<Rebuilt> {
    // Whatever the steps before left dirty (the generated history, the previous rebuild) is
    // written out now, so that this rebuild's checkpoints are only its own.
    pool.get().await?.batch_execute("CHECKPOINT").await?;
    let cancelled = tokio_util::sync::CancellationToken::new();
    // The rebuild runs in this process: its peak memory is this process's peak while it
    // runs (the history's bookkeeping held by the bench included, a few bytes per order).
    bench::process::reset_own_peak()?;
    let started = Instant::now();
    let status = projections::rebuild::rebuild(
        pool,
        projection,
        Target::Live,
        Settings::with_batch(BATCH),
        RebuildProgress::default(),
        cancelled,
    )
    .await
    .with_context(|| format!("rebuilding {}", projection.name()))?;
    let took = started.elapsed();
    let peak_rss_mib = bench::process::memory(std::process::id())
        .context("reading this process's memory from /proc")?
        .peak_rss_mib;
    anyhow::ensure!(
        status.replayed == events.unsigned_abs(),
        "{} replayed {} of {events} events",
        projection.name(),
        status.replayed
    );
    // The vacuum autovacuum would soon give the tables the rebuild only analysed, done now
    // and timed apart: in the background of a real rebuild, it would otherwise run inside
    // the next measurement.
    let started = Instant::now();
    let client = pool.get().await?;
    for table in projection.tables() {
        client.batch_execute(&format!("VACUUM {table}")).await?;
    }
    let vacuum = started.elapsed();
    Ok(Rebuilt {
        took,
        replay_per_second: status.events_per_second,
        phases: status.phases,
        vacuum,
        peak_rss_mib,
    })
}

/// The read models must be what the generated histories imply.
async fn check_read_models(
    client: &tokio_postgres::Client,
    history: &History,
) -> anyhow::Result<()> {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM payments),
                    (SELECT count(*) FROM payments WHERE NOT cancelled AND outstanding <> 0),
                    (SELECT count(*) FROM notifications),
                    (SELECT count(*) FROM events WHERE event_type <> 'OrderFullyPaid')",
            &[],
        )
        .await?;
    let (payments, unpaid, notifications, notifiable): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    anyhow::ensure!(
        payments == history.orders.len() as i64 && unpaid == 0 && notifications == notifiable,
        "read models: {payments} payments of {} orders, {unpaid} unpaid, {notifications} notifications of {notifiable}",
        history.orders.len()
    );
    Ok(())
}

/// Makes sure both projections' watermarks cover the history (the swap advances them);
/// returns a note if the bench had to advance them itself.
async fn watermarks_cover(pool: &Pool, history: &History) -> anyhow::Result<Option<String>> {
    let client = pool.get().await?;
    let mut notes = Vec::new();
    for name in projections::ProjectionKind::ALL.map(projections::ProjectionKind::name) {
        let mut watermark = projections::watermark::read(&client, name).await?;
        let mut rounds = 0;
        while watermark.position < history.max_position
            || watermark.complete_through < history.last_recorded_at
        {
            anyhow::ensure!(rounds < 1_000, "the {name} watermark does not advance: {watermark:?}");
            watermark = projections::watermark::advance(&client, name).await?;
            rounds += 1;
        }
        if rounds > 0 {
            notes
                .push(format!("{name}: advanced the watermark {rounds} time(s) after the rebuild"));
        }
    }
    Ok((!notes.is_empty()).then(|| notes.join("; ")))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    PaymentAtPosition,
    PaymentLatest,
    CustomerPaymentsAtPosition,
    CustomerPaymentsLatest,
    BalanceAsOf,
    BalanceLatest,
    NotificationsAtPosition,
    NotificationsLatest,
    OrderAtPosition,
    OrderLatest,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::PaymentAtPosition,
        Kind::PaymentLatest,
        Kind::CustomerPaymentsAtPosition,
        Kind::CustomerPaymentsLatest,
        Kind::BalanceAsOf,
        Kind::BalanceLatest,
        Kind::NotificationsAtPosition,
        Kind::NotificationsLatest,
        Kind::OrderAtPosition,
        Kind::OrderLatest,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::PaymentAtPosition => "GET /v1/payments/{id}?at_position",
            Kind::PaymentLatest => "GET /v1/payments/{id}",
            Kind::CustomerPaymentsAtPosition => "GET /v1/payments?customer_id&limit=50&at_position",
            Kind::CustomerPaymentsLatest => "GET /v1/payments?customer_id&limit=50",
            Kind::BalanceAsOf => "GET /v1/customers/{id}/balance?as_of",
            Kind::BalanceLatest => "GET /v1/customers/{id}/balance",
            Kind::NotificationsAtPosition => "GET /v1/notifications?order_id&at_position",
            Kind::NotificationsLatest => "GET /v1/notifications?order_id",
            Kind::OrderAtPosition => "GET /v1/orders/{id}?at_position",
            Kind::OrderLatest => "GET /v1/orders/{id}",
        }
    }

    /// Path and query of one request at a random cut (or the latest state).
    fn request(
        self,
        random: &mut Random,
        history: &History,
    ) -> (String, Vec<(&'static str, String)>) {
        let position = history.position(random);
        match self {
            Kind::PaymentAtPosition => (
                format!("/v1/payments/{}", history.order_at(random, position)),
                vec![("at_position", position.to_string())],
            ),
            Kind::PaymentLatest => (format!("/v1/payments/{}", history.any_order(random)), vec![]),
            Kind::CustomerPaymentsAtPosition => (
                "/v1/payments".to_owned(),
                vec![
                    ("customer_id", customer(random)),
                    ("limit", "50".to_owned()),
                    ("at_position", position.to_string()),
                ],
            ),
            Kind::CustomerPaymentsLatest => (
                "/v1/payments".to_owned(),
                vec![("customer_id", customer(random)), ("limit", "50".to_owned())],
            ),
            Kind::BalanceAsOf => (
                format!("/v1/customers/{}/balance", customer(random)),
                vec![("as_of", history.time(random).to_rfc3339_opts(SecondsFormat::Micros, true))],
            ),
            Kind::BalanceLatest => (format!("/v1/customers/{}/balance", customer(random)), vec![]),
            Kind::NotificationsAtPosition => (
                "/v1/notifications".to_owned(),
                vec![
                    ("order_id", history.order_at(random, position).to_string()),
                    ("at_position", position.to_string()),
                ],
            ),
            Kind::NotificationsLatest => (
                "/v1/notifications".to_owned(),
                vec![("order_id", history.any_order(random).to_string())],
            ),
            Kind::OrderAtPosition => (
                format!("/v1/orders/{}", history.order_at(random, position)),
                vec![("at_position", position.to_string())],
            ),
            Kind::OrderLatest => (format!("/v1/orders/{}", history.any_order(random)), vec![]),
        }
    }
}

struct Latencies {
    sorted: Vec<Duration>,
    failures: usize,
    first_failure: Option<String>,
}

/// Sequential requests, the kinds interleaved (so noise from other work on the machine
/// falls on all of them alike), through the API serving on `url` with a read token.
async fn as_of_latency(
    url: &str,
    history: &History,
    requests: usize,
) -> anyhow::Result<BTreeMap<Kind, Latencies>> {
    let mut settings = ledger::Settings::new(url, Some("read:bench-read-token".parse()?));
    settings.http_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.roles = vec![ledger::Role::Api];
    let application = ledger::Application::build(settings).await?;
    let address = application.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run(async {
        let _ = stopped.await;
    }));

    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_static("Bearer bench-read-token"),
    );
    let http = reqwest::Client::builder().default_headers(headers).build()?;
    let mut random = Random(0x6c65_6467_6572);
    let mut results: BTreeMap<Kind, Latencies> = Kind::ALL
        .iter()
        .map(|kind| (*kind, Latencies { sorted: Vec::new(), failures: 0, first_failure: None }))
        .collect();
    // The first rounds warm the connections, statement caches and buffers; not counted.
    let warm_up = 20;
    for round in 0..(warm_up + requests) {
        for kind in Kind::ALL {
            let (path, query) = kind.request(&mut random, history);
            let sent = Instant::now();
            let response = http.get(format!("http://{address}{path}")).query(&query).send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            let took = sent.elapsed();
            if round < warm_up {
                continue;
            }
            let Some(result) = results.get_mut(&kind) else { continue };
            if status.as_u16() == 200 {
                result.sorted.push(took);
            } else {
                result.failures += 1;
                result.first_failure.get_or_insert_with(|| {
                    format!("{path}?{query:?}: {status} {}", String::from_utf8_lossy(&body))
                });
            }
        }
    }
    for result in results.values_mut() {
        result.sorted.sort();
    }
    let _ = stop.send(());
    server.await??;
    Ok(results)
}

/// The benchmark's database: a fresh [`TestDatabase`] renamed out of the `ledger_test_*`
/// pattern, because `scripts/test` drops every such database it finds when it starts (as
/// leftovers of killed runs), and this benchmark runs for many minutes beside other work.
/// Dropped when the guard drops; a killed run leaves a `ledger_bench_*` database behind.
struct BenchDatabase {
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create() -> anyhow::Result<Self> {
        let database = TestDatabase::create().await?;
        let name = database.name.replacen("ledger_test_", "ledger_bench_", 1);
        admin()
            .await?
            .batch_execute(&format!("ALTER DATABASE {} RENAME TO {name}", database.name))
            .await
            .context("renaming the benchmark's database")?;
        // The test database's own guard now finds nothing to drop under its old name.
        Ok(Self { url: database.url.replace(&database.name, &name), name })
    }

    async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.url).await
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        if std::env::var_os("BENCH_KEEP_DATABASE").is_some() {
            println!("kept the benchmark database {name} (BENCH_KEEP_DATABASE)");
            return;
        }
        // As `TestDatabase` does: no runtime to block on here, so a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                admin().await?.batch_execute(&drop).await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the benchmark database {}", self.name);
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Where `TestDatabase` creates databases (`LEDGER_TEST_DATABASE_URL`).
async fn admin() -> anyhow::Result<tokio_postgres::Client> {
    let url = std::env::var("LEDGER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    connect(&url).await
}

struct Run {
    events: i64,
    orders: usize,
    reads: Reads,
    payments: Rebuilt,
    notifications: Rebuilt,
    /// Every round's rebuild times, each with its baseline: the faster of the `COPY` reads
    /// just before and just after it.
    rounds: Vec<Round>,
    latencies: BTreeMap<Kind, Latencies>,
}

/// One round of rebuilds: payments, then notifications, between two `COPY` reads.
struct Round {
    copy: Duration,
    payments: Duration,
    notifications: Duration,
}

impl Round {
    /// The payments and notifications rates, each divided by the round's `COPY` rate.
    fn ratios(&self) -> (f64, f64) {
        let copy = self.copy.as_secs_f64();
        (copy / self.payments.as_secs_f64(), copy / self.notifications.as_secs_f64())
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

async fn run(events: i64, requests: usize) -> anyhow::Result<Run> {
    let database = BenchDatabase::create().await?;
    let client = database.client().await?;
    let history = generate(&client, events).await?;
    let events = history.events;
    println!(
        "\n== history of {events} events ({} orders, {CUSTOMERS} customers): generated in {:.1?} = {:.0} events/s",
        history.orders.len(),
        history.generated_in,
        per_second(events.unsigned_abs(), history.generated_in)
    );

    let reads = raw_reads(&client, events).await?;
    let mut settings = eventstore::PoolSettings::new(database.url.clone());
    settings.max_size = 4;
    let pool = eventstore::connect(&settings)?;
    // Rounds of both rebuilds, the baseline read again after each, and each round's ratios
    // taken against the faster of the reads around it: a neighbour that slowed one read
    // down must not flatter them. The last round is reported in full: the first one swaps
    // out live tables that are still empty (the history is generated without the live
    // workers), so its swap and the drop of the retired tables cost less than they would.
    let mut rounds = Vec::new();
    let mut last = None;
    let mut copy_before = reads.copy;
    for _ in 0..env_or("BENCH_ROUNDS", 1_usize).max(1) {
        let payments = rebuild(&pool, &projections::payments::Payments, events).await?;
        let notifications =
            rebuild(&pool, &projections::notifications::Notifications, events).await?;
        let (copy_after, _) = copy_read(&client, events).await?;
        rounds.push(Round {
            copy: copy_before.min(copy_after),
            payments: payments.took,
            notifications: notifications.took,
        });
        copy_before = copy_after;
        last = Some((payments, notifications));
    }
    let (payments, notifications) = last.context("no round")?;
    let mut reads = reads;
    reads.copy = rounds.last().context("no round")?.copy;
    check_read_models(&client, &history).await?;
    if let Some(note) = watermarks_cover(&pool, &history).await? {
        println!("note: {note}");
    }
    // The swapped-in tables are new; give the planner the statistics autovacuum would.
    client.batch_execute("ANALYZE").await?;
    pool.close();

    let latencies = as_of_latency(&database.url, &history, requests).await?;
    let run = Run {
        events,
        orders: history.orders.len(),
        reads,
        payments,
        notifications,
        rounds,
        latencies,
    };
    print_run(&run);
    Ok(run)
}

fn print_run(run: &Run) {
    let events = run.events.unsigned_abs();
    let raw = per_second(events, run.reads.copy);
    println!("{:<58} {:>10} {:>12} {:>8}", "read or rebuild", "took", "events/s", "/ COPY");
    let line = |what: &str, took: Duration| {
        let rate = per_second(events, took);
        println!("{what:<58} {:>10.2?} {rate:>12.0} {:>8.2}", took, rate / raw);
    };
    line(
        &format!(
            "COPY (… ORDER BY tx_id, global_position) TO STDOUT, {:.0} MB",
            run.reads.copy_megabytes
        ),
        run.reads.copy,
    );
    line("SELECT in commit order, one query, rows decoded", run.reads.select);
    line("keyset batches of 10 000 from events_commit_order, decoded", run.reads.keyset);
    line("replay_committed_after statements + parse + upcast (rebuild's)", run.reads.rebuild_read);
    line("rebuild payments (create, replay, swap)", run.payments.took);
    line("rebuild notifications (create, replay, swap)", run.notifications.took);
    println!(
        "replay alone (as the rebuild reports it): payments {:.0} events/s, notifications {:.0} events/s",
        run.payments.replay_per_second, run.notifications.replay_per_second
    );
    for (name, rebuilt) in [("payments", &run.payments), ("notifications", &run.notifications)] {
        let phases: Vec<String> = rebuilt
            .phases
            .iter()
            .map(|p| format!("{} {:.2}s", p.phase.to_string().replace('_', " "), p.seconds))
            .collect();
        println!(
            "  {name} phases: {}; then, not counted, the vacuum autovacuum would do: {:.2?}; \
             peak RSS of the process while it ran: {:.0} MiB",
            phases.join(", "),
            rebuilt.vacuum,
            rebuilt.peak_rss_mib
        );
    }
    if run.rounds.len() > 1 {
        println!("rounds: events/s (÷ the faster COPY read around the round)");
        for (n, round) in run.rounds.iter().enumerate() {
            let (payments, notifications) = round.ratios();
            println!(
                "  round {}: COPY {:.0} events/s, payments {:.0} ({payments:.2}), notifications {:.0} ({notifications:.2})",
                n + 1,
                per_second(events, round.copy),
                per_second(events, round.payments),
                per_second(events, round.notifications)
            );
        }
    }
    let requests = run.latencies.values().map(|l| l.sorted.len()).max().unwrap_or(0);
    println!(
        "\n{:<52} {:>9} {:>9} {:>9} {:>9} {:>6}",
        format!("query ({requests} requests each, sequential)"),
        "p50",
        "p95",
        "p99",
        "max",
        "non200"
    );
    for (kind, latency) in &run.latencies {
        let sorted = &latency.sorted;
        println!(
            "{:<52} {:>9.2?} {:>9.2?} {:>9.2?} {:>9.2?} {:>6}",
            kind.label(),
            percentile(sorted, 0.50),
            percentile(sorted, 0.95),
            percentile(sorted, 0.99),
            sorted.last().copied().unwrap_or_default(),
            latency.failures
        );
        if let Some(failure) = &latency.first_failure {
            println!("    first failure: {failure}");
        }
    }
}

fn print_summary(runs: &[Run], started: Instant) {
    println!("\n== summary (goals: rebuild >= 100 000 events/s and >= 0.3 x the raw read; as-of p99 <= 10 ms, flat as history grows)");
    println!(
        "{:>10} {:>9} {:>12} {:>12} {:>6} {:>14} {:>6}",
        "events", "orders", "COPY ev/s", "payments", "ratio", "notifications", "ratio"
    );
    for run in runs {
        let events = run.events.unsigned_abs();
        let raw = per_second(events, run.reads.copy);
        let (payments, notifications) =
            (per_second(events, run.payments.took), per_second(events, run.notifications.took));
        println!(
            "{:>10} {:>9} {raw:>12.0} {payments:>12.0} {:>6.2} {notifications:>14.0} {:>6.2}",
            run.events,
            run.orders,
            payments / raw,
            notifications / raw
        );
    }
    for run in runs.iter().filter(|run| run.rounds.len() > 1) {
        let (payments, notifications): (Vec<f64>, Vec<f64>) =
            run.rounds.iter().map(Round::ratios).unzip();
        println!(
            "{:>10}  median of {} rounds: payments {:.2} ({:.2}–{:.2}), notifications {:.2} ({:.2}–{:.2})",
            run.events,
            run.rounds.len(),
            median(payments.clone()),
            payments.iter().copied().fold(f64::INFINITY, f64::min),
            payments.iter().copied().fold(0.0, f64::max),
            median(notifications.clone()),
            notifications.iter().copied().fold(f64::INFINITY, f64::min),
            notifications.iter().copied().fold(0.0, f64::max),
        );
    }
    let sizes: Vec<String> = runs.iter().map(|r| r.events.to_string()).collect();
    println!("\np99 per query kind at {} events", sizes.join(" / "));
    for kind in Kind::ALL {
        let p99s: Vec<Duration> = runs
            .iter()
            .filter_map(|run| run.latencies.get(&kind))
            .map(|latency| percentile(&latency.sorted, 0.99))
            .collect();
        let shown: Vec<String> = p99s.iter().map(|p| format!("{p:.2?}")).collect();
        let growth = match (p99s.first(), p99s.last()) {
            (Some(first), Some(last)) if p99s.len() > 1 => {
                format!("  (x{:.2})", last.as_secs_f64() / first.as_secs_f64().max(1e-9))
            }
            _ => String::new(),
        };
        println!("  {:<52} {}{growth}", kind.label(), shown.join(" / "));
    }
    println!(
        "\nmachine: {} cores, shared by this process (generator, API, client), PostgreSQL and other work; total {:.1?}",
        std::thread::available_parallelism().map_or(0, usize::from),
        started.elapsed()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<i64> = std::env::var("BENCH_EVENTS")
        .unwrap_or_else(|_| "100000,1000000".to_owned())
        .split(',')
        .map(|size| size.trim().replace('_', "").parse())
        .collect::<Result<_, _>>()
        .context("BENCH_EVENTS: a comma list of event counts")?;
    let requests: usize = env_or("BENCH_REQUESTS", 2_000);
    let started = Instant::now();
    let mut runs = Vec::new();
    for size in sizes {
        runs.push(run(size, requests).await?);
    }
    print_summary(&runs, started);
    let failures: usize = runs.iter().flat_map(|r| r.latencies.values()).map(|l| l.failures).sum();
    anyhow::ensure!(failures == 0, "{failures} as-of requests did not answer 200");
    Ok(())
}
