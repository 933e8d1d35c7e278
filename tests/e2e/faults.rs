//! Fault tolerance under load, proven against the real `ledger` binary:
//!
//! - killed with SIGKILL mid-stream and restarted, it loses no acknowledged command and
//!   projects every stored event exactly once;
//! - with the broker gone, commands keep being accepted, and everything reaches the read
//!   models once the broker is back;
//! - with PostgreSQL gone, requests fail fast with a retryable 503 instead of hanging, and
//!   the same process serves again as soon as the database returns.
//!
//! The ground truth is always the database itself, queried directly, never the API.

use std::time::{Duration, Instant};

use anyhow::Context;
use bench::outcome::{Answered, Outcome};
use futures_util::stream::{self, StreamExt};
use ledger_tests::audit::{audit_store, projection_mismatches, wait_until_projected};
use ledger_tests::{
    expect_json, expect_status, poll_until, start_load, LedgerConfig, LedgerProcess,
    PrivateCluster, StopMode, TestBroker, TestDatabase,
};
use serde_json::json;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(30);
/// Each generated order is placed, then this much of it is captured: a second event per
/// order, and an amount that would visibly double if a capture were applied twice.
const CAPTURE_MINOR: i64 = 1000;
const ALL_ROLES: &str = "api,relay,projector";
/// The longest a request may take while a dependency is down: far below a client's
/// patience. Nothing may wait for a broker or a database that is not there.
const FAIL_FAST: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_ledger_killed_with_sigkill_under_load_loses_nothing_and_projects_everything_once(
) -> anyhow::Result<()> {
    let database = TestDatabase::create().await?;
    let config = LedgerConfig::new(&database.url)?.roles(ALL_ROLES);
    let mut ledger = LedgerProcess::start(config).await?;
    let outcome = killed_under_load(&mut ledger, &database).await;
    ledger.explain(outcome)
}

async fn killed_under_load(
    ledger: &mut LedgerProcess,
    database: &TestDatabase,
) -> anyhow::Result<()> {
    let load = start_load(ledger, "cus_kill9", 8, Some(CAPTURE_MINOR))?;
    load.wait_for_acknowledged(300, DEADLINE).await?;
    ledger.kill_9().await?;
    let killed_at = Instant::now();
    let acknowledged_at_kill = load.acknowledged();
    ledger.restart().await?;
    let recovered_at = first_acknowledged_after(&load, killed_at).await?;
    load.wait_for_acknowledged(150, DEADLINE).await?;
    let report = load.stop().await?;

    let store = database.client().await?;
    let audit = audit_store(&store, &report).await?;
    let in_flight = report.outcomes.iter().filter(|o| no_answer(o) && o.sent_at < killed_at);
    let in_flight = in_flight.count();
    let projected = wait_until_projected(&store).await?;
    let caught_up = killed_at.elapsed();
    let (payments, notifications) = projection_mismatches(&store).await?;
    let workers = worker_figures(ledger).await?;
    eprintln!(
        "kill -9 under load: sent={} acknowledged={} (at kill {acknowledged_at_kill}) \
         acknowledged_found_in_store={} stored_events={} unanswered_in_flight={in_flight} \
         unanswered_but_stored={} projected_orders={projected} duplicates={} errors={:?} \
         recovery_after_kill={:?} read_models_caught_up_after_kill={caught_up:?} \
         latency_p99={:?} workers_since_restart: {workers}",
        report.sent(),
        audit.acknowledged,
        audit.found,
        audit.stored_events,
        audit.unanswered_but_stored,
        audit.duplicates,
        report.errors(),
        recovered_at - killed_at,
        report.latency_percentile(99.0),
    );

    assert_eq!(audit.missing, Vec::<Uuid>::new(), "acknowledged events missing from the store");
    assert_eq!(audit.found, audit.acknowledged);
    assert_eq!(audit.duplicates, 0, "a command stored twice");
    assert_eq!(payments, Vec::<String>::new(), "payments read model differs from the store");
    assert_eq!(notifications, Vec::<String>::new(), "not one notification per event");
    assert_eq!(projected, audit.stored_orders, "every stored order is projected");
    // While the process was down clients could not connect; once it was up, nothing but
    // 201s. An internal error anywhere would be a bug.
    assert!(!report.errors().keys().any(|label| label.starts_with('5')), "{}", report.summary());
    Ok(())
}

/// The broker goes away under load (every connection drops, new ones are refused) and
/// comes back with its data, as a broker with disks does. Every command is accepted
/// throughout, the relay publishes the whole backlog once the broker is back, and every
/// event committed before, during or after the outage ends up in the read models exactly
/// once. After the outage every order gets one more command, so the read models are also
/// checked against orders that moved on. (A broker that comes back empty is
/// `catch_up::messages_a_restarted_broker_forgot_are_healed_without_a_restart`; with
/// consumers attached it crashes librdkafka, see `TestBroker::forget_everything`.)
#[tokio::test]
async fn commands_are_accepted_while_the_broker_is_down_and_everything_is_projected_after(
) -> anyhow::Result<()> {
    let _heavy = ledger_tests::process::one_heavy_spec_at_a_time().await;
    let mut broker = TestBroker::start().await?;
    let database = TestDatabase::create().await?;
    let config = LedgerConfig::new(&database.url)?.roles(ALL_ROLES).kafka(&broker.address());
    let mut ledger = LedgerProcess::start(config).await?;
    let outcome = broker_outage_under_load(&mut ledger, &mut broker, &database).await;
    ledger.explain(outcome)
}

async fn broker_outage_under_load(
    ledger: &mut LedgerProcess,
    broker: &mut TestBroker,
    database: &TestDatabase,
) -> anyhow::Result<()> {
    let load = start_load(ledger, "cus_broker", 4, Some(CAPTURE_MINOR))?;
    load.wait_for_acknowledged(150, DEADLINE).await?;

    broker.stop().await?;
    let down_at = Instant::now();
    poll_until(DEADLINE, "the relay to notice the outage", || async {
        let status = relay_status(ledger).await?;
        Ok((status["process"]["broker"] == "unreachable").then_some(()))
    })
    .await?;
    load.wait_for_acknowledged(200, DEADLINE).await?;
    broker.resume().await?;
    let up_at = Instant::now();
    load.wait_for_acknowledged(150, DEADLINE).await?;
    let report = load.stop().await?;

    let backlog_drained = poll_until(DEADLINE, "the relay to publish the backlog", || async {
        let status = relay_status(ledger).await?;
        let drained = status["process"]["broker"] == "reachable" && status["store"]["backlog"] == 0;
        Ok(drained.then(Instant::now))
    })
    .await?;
    let touches = touch_every_order(ledger, &report.placed_orders()).await?;

    let store = database.client().await?;
    let audit = audit_store(&store, &report).await?;
    let projected = wait_until_projected(&store).await?;
    let (payments, notifications) = projection_mismatches(&store).await?;
    let during: Vec<&Outcome> =
        report.outcomes.iter().filter(|o| o.sent_at >= down_at && o.sent_at < up_at).collect();
    let relay = relay_status(ledger).await?;
    let workers = worker_figures(ledger).await?;
    eprintln!(
        "broker stopped under load: sent={} acknowledged={} sent_during_outage={} \
         acknowledged_during_outage={} acknowledged_found_in_store={} stored_events={} \
         touched_after={touches} projected_orders={projected} duplicates={} errors={:?} \
         outage={:?} backlog_published_after_return={:?} relay_published_events={} \
         latency_p99={:?} slowest_during_outage={:?} workers: {workers}",
        report.sent(),
        audit.acknowledged,
        during.len(),
        during.iter().filter(|o| o.is_acknowledged()).count(),
        audit.found,
        audit.stored_events,
        audit.duplicates,
        report.errors(),
        up_at - down_at,
        backlog_drained - up_at,
        relay["process"]["published_events"],
        report.latency_percentile(99.0),
        during.iter().map(|o| o.latency()).max().unwrap_or_default(),
    );

    assert!(during.len() >= 200, "the outage saw load: {}", during.len());
    // Nothing waits on the broker: a command is answered as fast during the outage as
    // before it (a stalled runtime thread once held requests for 10 s here).
    let slowest = during.iter().map(|o| o.latency()).max().unwrap_or_default();
    assert!(slowest < FAIL_FAST, "a command took {slowest:?} during the broker outage");
    let refused: Vec<String> =
        report.outcomes.iter().filter(|o| !o.is_acknowledged()).map(Outcome::label).collect();
    assert_eq!(refused, Vec::<String>::new(), "every command succeeds, during the outage too");
    assert_eq!(audit.missing, Vec::<Uuid>::new(), "acknowledged events missing from the store");
    assert_eq!(audit.found, audit.acknowledged);
    assert_eq!(audit.duplicates, 0, "a command stored twice");
    assert_eq!(payments, Vec::<String>::new(), "payments read model differs from the store");
    assert_eq!(notifications, Vec::<String>::new(), "not one notification per event");
    assert_eq!(projected, audit.stored_orders, "every stored order is projected");
    Ok(())
}

/// One more event for every order, after the outage: records a declined payment attempt.
async fn touch_every_order(ledger: &LedgerProcess, orders: &[Uuid]) -> anyhow::Result<usize> {
    let touched = stream::iter(orders)
        .map(|order_id| async move {
            let body = json!({ "payment_id": "pay_touch", "amount_minor": 1, "reason": "touch" });
            let path = format!("/v1/orders/{order_id}/payment-failures");
            let response = ledger.http.post(ledger.url(&path)).json(&body).send().await?;
            expect_status(response, 201).await
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for outcome in &touched {
        if let Err(error) = outcome {
            anyhow::bail!("touching an order after the outage: {error:#}");
        }
    }
    Ok(touched.len())
}

#[tokio::test]
async fn with_postgres_down_requests_fail_fast_and_the_same_process_recovers() -> anyhow::Result<()>
{
    // It times each refusal: not beside another spec that loads both cores.
    let _heavy = ledger_tests::process::one_heavy_spec_at_a_time().await;
    let mut cluster = PrivateCluster::start().await?;
    // With backtraces on, as operators often run: a refusal must not wait for one to be
    // resolved (it took the runtime's threads for seconds in a debug build).
    let config = LedgerConfig::new(cluster.url("ledger"))?
        .roles(ALL_ROLES)
        .arg("--db-wait-timeout-ms", "1000")
        .env("RUST_BACKTRACE", "1");
    let mut ledger = LedgerProcess::start(config).await?;
    let outcome = postgres_outage_under_load(&mut ledger, &mut cluster).await;
    let outcome = ledger.explain(outcome);
    outcome.map_err(|error| {
        error.context(format!("private cluster log ends with:\n{}", cluster.log_tail(20)))
    })
}

async fn postgres_outage_under_load(
    ledger: &mut LedgerProcess,
    cluster: &mut PrivateCluster,
) -> anyhow::Result<()> {
    let load = start_load(ledger, "cus_pg", 8, Some(CAPTURE_MINOR))?;
    load.wait_for_acknowledged(200, DEADLINE).await?;

    // Immediate: the server dies without a goodbye to its sessions, as in a crash; it
    // recovers from its WAL when it starts again.
    cluster.stop(StopMode::Immediate).await?;
    let down_at = Instant::now();
    let sent_while_down = || load.outcomes_where(|o| o.sent_at >= down_at).len();
    poll_until(DEADLINE, "2 s of outage with requests answered", || async {
        Ok((down_at.elapsed() >= Duration::from_secs(2) && sent_while_down() >= 20).then_some(()))
    })
    .await?;
    let readiness = ledger.http.get(ledger.url("/readyz")).send().await?.status().as_u16();
    // The server accepts connections some time before `resume` returns: the outage, as
    // far as assertions go, ends when the start begins.
    let up_at = Instant::now();
    cluster.resume().await?;
    let recovered_at = first_acknowledged_after(&load, up_at).await?;
    load.wait_for_acknowledged(200, DEADLINE).await?;
    let report = load.stop().await?;

    let store = cluster.client("ledger").await?;
    let audit = audit_store(&store, &report).await?;
    let projected = wait_until_projected(&store).await?;
    let (payments, notifications) = projection_mismatches(&store).await?;
    let during: Vec<&Outcome> =
        report.outcomes.iter().filter(|o| o.sent_at >= down_at && o.sent_at < up_at).collect();
    let slowest_refusal = report
        .outcomes
        .iter()
        .filter(|o| !o.is_acknowledged())
        .map(Outcome::latency)
        .max()
        .unwrap_or_default();
    let last_acknowledged_before = report
        .acknowledged()
        .filter(|o| o.answered_at <= down_at)
        .map(|o| o.answered_at)
        .max()
        .unwrap_or(down_at);
    let workers = worker_figures(ledger).await?;
    eprintln!(
        "postgres stopped under load: sent={} acknowledged={} sent_during_outage={} \
         acknowledged_found_in_store={} stored_events={} unanswered_but_stored={} \
         projected_orders={projected} duplicates={} errors={:?} outage={:?} \
         slowest_refusal={slowest_refusal:?} readyz_during_outage={readiness} \
         recovery_after_database_back={:?} client_visible_gap={:?} latency_p99={:?} \
         workers: {workers}",
        report.sent(),
        audit.acknowledged,
        during.len(),
        audit.found,
        audit.stored_events,
        audit.unanswered_but_stored,
        audit.duplicates,
        report.errors(),
        up_at - down_at,
        recovered_at - up_at,
        recovered_at - last_acknowledged_before,
        report.latency_percentile(99.0),
    );

    // While the database is down every request is answered, quickly, with a 503 a client
    // knows to retry.
    assert!(during.len() >= 20, "the outage saw load: {}", during.len());
    for outcome in &during {
        assert_retryable_refusal(outcome);
    }
    // Around the outage too: nothing hangs, nothing is a 500 or a dropped connection.
    for outcome in report.outcomes.iter().filter(|o| !o.is_acknowledged()) {
        assert_retryable_refusal(outcome);
    }
    assert_eq!(readiness, 503, "not ready while the database is down");
    assert!(ledger.starts == 1 && ledger.is_running(), "recovered without a restart");
    assert_eq!(audit.missing, Vec::<Uuid>::new(), "acknowledged events missing from the store");
    assert_eq!(audit.found, audit.acknowledged);
    assert_eq!(audit.duplicates, 0, "a command stored twice");
    assert_eq!(payments, Vec::<String>::new(), "payments read model differs from the store");
    assert_eq!(notifications, Vec::<String>::new(), "not one notification per event");
    assert_eq!(projected, audit.stored_orders, "every stored order is projected");
    Ok(())
}

fn assert_retryable_refusal(outcome: &Outcome) {
    let latency = outcome.latency();
    match &outcome.answer {
        Answered::Refused { status: 503, code, content_type, retry_after } => {
            assert_eq!(code.as_deref(), Some("service_unavailable"), "{outcome:?}");
            assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{outcome:?}");
            assert!(retry_after.is_some(), "503 without Retry-After: {outcome:?}");
            assert!(latency < FAIL_FAST, "refused after {latency:?}: {outcome:?}");
        }
        _ => panic!("expected a fast 503 while the database is down, got {outcome:?}"),
    }
}

/// `GET /v1/admin/relay`, which must answer promptly whatever the broker is doing.
async fn relay_status(ledger: &LedgerProcess) -> anyhow::Result<serde_json::Value> {
    let response = ledger.http.get(ledger.url("/v1/admin/relay")).timeout(FAIL_FAST).send();
    let response = response.await.context("the relay status was not answered promptly")?;
    expect_json(response, 200).await
}

/// What this process's projection workers did: applied, duplicates dropped, healed from
/// the store.
async fn worker_figures(ledger: &LedgerProcess) -> anyhow::Result<String> {
    let status = ledger.get_json("/v1/admin/projections").await?;
    let workers = status["workers"].as_array().cloned().unwrap_or_default();
    let figures: Vec<String> = workers
        .iter()
        .map(|w| {
            format!(
                "{}(applied={} duplicates={} healed={})",
                w["projection"].as_str().unwrap_or("?"),
                w["applied_events"],
                w["duplicates"],
                w["healed_events"]
            )
        })
        .collect();
    Ok(figures.join(" "))
}

fn no_answer(outcome: &Outcome) -> bool {
    matches!(outcome.answer, Answered::NoAnswer { .. })
}

/// When the first command sent after `since` was acknowledged.
async fn first_acknowledged_after(
    load: &bench::engine::Load,
    since: Instant,
) -> anyhow::Result<Instant> {
    poll_until(DEADLINE, "a command acknowledged again", || async {
        let acknowledged = load.outcomes_where(|o| o.is_acknowledged() && o.sent_at >= since);
        Ok(acknowledged.iter().map(|o| o.answered_at).min())
    })
    .await
}
