//! After a crash the read models are current again within seconds, whatever the consumer
//! group protocol does (a restarted member may get no partition until the dead member's
//! session lapses, or at all): while the bus does not feed a projection, its catch-up
//! applies from the event store. Against the real `ledger` binary, killed with SIGKILL
//! under load:
//!
//! - restarted: read-your-writes for every order acknowledged before the kill answers 200
//!   within 2 s of `/readyz` turning 200, and every order acknowledged after it answers
//!   200 too (never 504);
//! - two projector processes, the one holding the partitions killed: the survivor applies
//!   every acknowledged event within 2 s plus the detection time (the catch-up's grace and
//!   interval, 2 s + 1 s) of the load's end.
//!
//! In both, the read models then equal a replay of the store: nothing lost, nothing twice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bench::outcome::{Answered, Outcome};
use futures_util::stream::{self, StreamExt};
use ledger_tests::audit::{projection_mismatches, wait_until_projected};
use ledger_tests::{poll_until, start_load, LedgerConfig, LedgerProcess, TestDatabase};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(30);
const CAPTURE_MINOR: i64 = 1000;
/// The goal: current within this long of being ready again.
const CURRENT_AFTER_READY: Duration = Duration::from_secs(2);
/// The catch-up's grace and interval (the defaults) when the bus feeds a consumer: how long
/// the survivor takes to notice that events of partitions nobody consumes are missing.
const DETECTION: Duration = Duration::from_secs(3);

/// Each acknowledged order with the highest version a 201 told its client.
fn acknowledged_versions<'a>(
    outcomes: impl IntoIterator<Item = &'a Outcome>,
) -> HashMap<Uuid, u32> {
    let mut versions = HashMap::new();
    for outcome in outcomes {
        if let Answered::Acknowledged { stream_version, .. } = outcome.answer {
            let entry = versions.entry(outcome.order_id).or_insert(0);
            *entry = (*entry).max(stream_version);
        }
    }
    versions
}

/// Asks the payments read model for each order at its version, waiting at most until
/// `by` (not at all once it has passed); returns the orders that were not answered 200.
async fn read_your_writes_by(
    ledger: &LedgerProcess,
    orders: &HashMap<Uuid, u32>,
    by: Instant,
) -> anyhow::Result<Vec<String>> {
    let failures = stream::iter(orders.iter())
        .map(|(order_id, version)| async move {
            let wait = by.saturating_duration_since(Instant::now()).as_millis();
            let url = ledger
                .url(&format!("/v1/payments/{order_id}?min_version={version}&wait_ms={wait}"));
            let response = ledger.http.get(url).send().await?;
            let status = response.status().as_u16();
            anyhow::Ok((status != 200).then(|| format!("{order_id} v{version}: {status}")))
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut refused = Vec::new();
    for failure in failures {
        refused.extend(failure?);
    }
    Ok(refused)
}

async fn assert_projected_once(database: &TestDatabase) -> anyhow::Result<()> {
    let store = database.client().await?;
    wait_until_projected(&store).await?;
    let (payments, notifications) = projection_mismatches(&store).await?;
    assert_eq!(payments, Vec::<String>::new(), "payments read model differs from the store");
    assert_eq!(notifications, Vec::<String>::new(), "not one notification per event");
    Ok(())
}

#[tokio::test]
async fn restarted_after_kill_9_the_read_models_are_current_within_2s_of_ready(
) -> anyhow::Result<()> {
    let _heavy = ledger_tests::process::one_heavy_spec_at_a_time().await;
    let database = TestDatabase::create().await?;
    let config = LedgerConfig::new(&database.url)?.roles("api,relay,projector");
    let mut ledger = LedgerProcess::start(config).await?;
    let outcome = async {
        let load = start_load(&ledger, "cus_restarted", 8, Some(CAPTURE_MINOR))?;
        load.wait_for_acknowledged(300, DEADLINE).await?;
        ledger.kill_9().await?;
        let killed_at = Instant::now();
        ledger.restart().await?;
        let ready_at = Instant::now();
        // Read-your-writes for what was acknowledged before the kill, right away, while the
        // load goes on against the restarted process.
        let before_kill = acknowledged_versions(
            &load.outcomes_where(|o| o.is_acknowledged() && o.answered_at < killed_at),
        );
        let late =
            read_your_writes_by(&ledger, &before_kill, ready_at + CURRENT_AFTER_READY).await?;
        load.wait_for_acknowledged(150, DEADLINE).await?;
        let report = load.stop().await?;
        let everything = acknowledged_versions(report.acknowledged());
        let by = Instant::now() + Duration::from_secs(5);
        let refused = read_your_writes_by(&ledger, &everything, by).await?;
        eprintln!(
            "restarted after kill -9: {} orders acknowledged before the kill, {} in all; \
             checked within 2 s of ready: {:?} after it",
            before_kill.len(),
            everything.len(),
            ready_at.elapsed(),
        );
        assert!(before_kill.len() >= 100, "the load acknowledged too little to tell");
        assert_eq!(late, Vec::<String>::new(), "not current within 2 s of ready");
        assert_eq!(refused, Vec::<String>::new(), "read-your-writes refused after the restart");
        assert_projected_once(&database).await
    }
    .await;
    ledger.explain(outcome)
}

#[tokio::test]
async fn when_the_projector_holding_the_partitions_dies_the_survivor_applies_them(
) -> anyhow::Result<()> {
    let _heavy = ledger_tests::process::one_heavy_spec_at_a_time().await;
    let database = TestDatabase::create().await?;
    let config = LedgerConfig::new(&database.url)?.roles("api,relay");
    let mut writer = LedgerProcess::start(config.clone()).await?;
    let mut first = LedgerProcess::start(config.clone().roles("projector")).await?;
    let mut second = LedgerProcess::start(config.roles("projector")).await?;
    let outcome = async {
        let load = start_load(&writer, "cus_survived", 8, Some(CAPTURE_MINOR))?;
        // Both members have joined and the group has settled: every partition of both
        // projections is held by one of them.
        let (held_first, held_second) = poll_until(DEADLINE, "the group to settle", || async {
            let (a, b) = (first.partitions().await?, second.partitions().await?);
            let settled = ["payments", "notifications"].iter().all(|projection| {
                let count =
                    |held: &HashMap<String, Vec<i64>>| held.get(*projection).map_or(0, Vec::len);
                count(&a) + count(&b) == 8
            });
            Ok(settled.then_some((a, b)))
        })
        .await?;
        load.wait_for_acknowledged(200, DEADLINE).await?;
        let total = |held: &HashMap<String, Vec<i64>>| held.values().map(Vec::len).sum::<usize>();
        let (victim, survivor) = if total(&held_first) >= total(&held_second) {
            (&mut first, &second)
        } else {
            (&mut second, &first)
        };
        victim.kill_9().await?;
        load.wait_for_acknowledged(300, DEADLINE).await?;
        let report = load.stop().await?;
        let stopped_at = Instant::now();
        let everything = acknowledged_versions(report.acknowledged());
        let refused =
            read_your_writes_by(&writer, &everything, stopped_at + CURRENT_AFTER_READY + DETECTION)
                .await?;
        let workers = survivor.get_json("/v1/admin/projections").await?["workers"].clone();
        eprintln!(
            "survivor after kill -9 of the member holding {} of 16 partitions: {} orders; \
             survivor's workers {workers}",
            total(&held_first).max(total(&held_second)),
            everything.len()
        );
        assert_eq!(refused, Vec::<String>::new(), "not applied by the survivor in time");
        assert_projected_once(&database).await
    }
    .await;
    let outcome = first.explain(outcome);
    let outcome = second.explain(outcome);
    writer.explain(outcome)
}
