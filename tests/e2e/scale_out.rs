//! Scale-out by role, as an operator deploys it: two API processes behind a round-robin
//! balancer, two relays (one publishes, the other stands by), two projector processes
//! sharing each consumer group, all separate `ledger` processes on one database and one
//! broker. Under load, one process of each role is killed with SIGKILL, one at a time, and
//! started again:
//!
//! - an API process: the balancer sends new connections to the other, and the load goes on;
//! - the active relay: the standby publishes within 5 s;
//! - the projector holding more partitions: the survivor takes every partition, and the
//!   restarted one takes some back.
//!
//! Then every command acknowledged to a client is in the store, none is stored twice, and
//! the read models equal a replay of the store.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ledger_tests::audit::{audit_store, projection_mismatches, wait_until_projected};
use ledger_tests::{
    poll_until, start_load_at, LedgerConfig, LedgerProcess, RoundRobin, TestDatabase,
};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(30);
const CAPTURE_MINOR: i64 = 1000;
/// The goal for a relay taking over from one that died.
const TAKEOVER: Duration = Duration::from_secs(5);
/// A dead member keeps its partitions until its session (10 s) lapses; then the group
/// rebalances.
const REBALANCE: Duration = Duration::from_secs(60);
/// Partitions of each projection's topic (the ledger's default).
const PARTITIONS: usize = 8;
const PROJECTIONS: [&str; 2] = ["payments", "notifications"];

type Held = HashMap<String, Vec<i64>>;

fn count(held: &Held, projection: &str) -> usize {
    held.get(projection).map_or(0, Vec::len)
}

fn total(held: &Held) -> usize {
    held.values().map(Vec::len).sum()
}

/// Waits until every partition of both projections is held by exactly one of `members`
/// and `settled` accepts the split; returns what each holds.
async fn until_held(
    members: [&LedgerProcess; 2],
    what: &str,
    settled: impl Fn(&Held, &Held) -> bool,
) -> anyhow::Result<(Held, Held)> {
    poll_until(REBALANCE, what, || async {
        let (a, b) = (members[0].partitions().await?, members[1].partitions().await?);
        let whole = PROJECTIONS.iter().all(|p| count(&a, p) + count(&b, p) == PARTITIONS);
        Ok((whole && settled(&a, &b)).then_some((a, b)))
    })
    .await
}

async fn start(config: &LedgerConfig, roles: &str) -> anyhow::Result<LedgerProcess> {
    LedgerProcess::start(config.clone().roles(roles)).await
}

#[tokio::test]
async fn two_processes_of_each_role_lose_nothing_when_any_one_is_killed() -> anyhow::Result<()> {
    let _heavy = ledger_tests::process::one_heavy_spec_at_a_time().await;
    let database = TestDatabase::create().await?;
    let config = LedgerConfig::new(&database.url)?;
    let mut apis = [start(&config, "api").await?, start(&config, "api").await?];
    let mut relays = [start(&config, "relay").await?, start(&config, "relay").await?];
    let mut projectors = [start(&config, "projector").await?, start(&config, "projector").await?];
    let balancer =
        RoundRobin::over(apis.iter().map(|api| format!("127.0.0.1:{}", api.port)).collect())
            .await?;
    let outcome = async {
        let load = start_load_at(&balancer.url(""), "cus_scaled_out", 8, Some(CAPTURE_MINOR))?;
        until_held(
            [&projectors[0], &projectors[1]],
            "both projectors to share the partitions",
            |a, b| total(a) > 0 && total(b) > 0,
        )
        .await?;
        load.wait_for_acknowledged(200, DEADLINE).await?;

        // An API process dies: its connections' requests go unanswered, new connections go
        // to the other process.
        let served = balancer.served();
        assert!(served.iter().all(|n| *n > 0), "the balancer used both API processes: {served:?}");
        apis[0].kill_9().await?;
        load.wait_for_acknowledged(200, DEADLINE).await?;
        apis[0].restart().await?;

        // The active relay dies: the standby takes the lock and goes on from the checkpoint.
        let (active, standby) =
            poll_until(DEADLINE, "one relay active, the other standing by", || async {
                let roles = (relays[0].relay_role().await?.0, relays[1].relay_role().await?.0);
                Ok(match (roles.0.as_str(), roles.1.as_str()) {
                    ("active", "standby") => Some((0, 1)),
                    ("standby", "active") => Some((1, 0)),
                    _ => None,
                })
            })
            .await?;
        let published_before = relays[standby].relay_role().await?.1;
        relays[active].kill_9().await?;
        let killed_at = Instant::now();
        let takeover = poll_until(DEADLINE, "the standby relay to publish", || async {
            let (role, published) = relays[standby].relay_role().await?;
            Ok((role == "active" && published > published_before).then(|| killed_at.elapsed()))
        })
        .await?;
        relays[active].restart().await?;
        poll_until(DEADLINE, "the restarted relay to stand by", || async {
            Ok((relays[active].relay_role().await?.0 == "standby").then_some(()))
        })
        .await?;
        load.wait_for_acknowledged(100, DEADLINE).await?;

        // The projector holding more partitions dies: the survivor takes them all once the
        // group notices, and the restarted process takes some back.
        let (first, second) =
            (projectors[0].partitions().await?, projectors[1].partitions().await?);
        let (victim, survivor) = if total(&first) >= total(&second) { (0, 1) } else { (1, 0) };
        let victim_held = total(if victim == 0 { &first } else { &second });
        projectors[victim].kill_9().await?;
        let killed_at = Instant::now();
        let survivor_alone =
            poll_until(REBALANCE, "the survivor to hold every partition", || async {
                let held = projectors[survivor].partitions().await?;
                let all = PROJECTIONS.iter().all(|p| count(&held, p) == PARTITIONS);
                Ok(all.then(|| killed_at.elapsed()))
            })
            .await?;
        projectors[victim].restart().await?;
        let restarted_at = Instant::now();
        until_held(
            [&projectors[0], &projectors[1]],
            "the restarted projector to take partitions back",
            |a, b| total(if victim == 0 { a } else { b }) > 0,
        )
        .await?;
        let taken_back = restarted_at.elapsed();
        load.wait_for_acknowledged(100, DEADLINE).await?;
        let report = load.stop().await?;

        let store = database.client().await?;
        let audit = audit_store(&store, &report).await?;
        eprintln!(
            "scale-out: sent={} acknowledged={} acknowledged_found_in_store={} stored_events={} \
             unanswered_but_stored={} connections_per_api={:?} relay_takeover={takeover:?} \
             survivor_held_all_after={survivor_alone:?} (victim held {victim_held} of 16) \
             restarted_took_some_back_after={taken_back:?}",
            report.sent(),
            audit.acknowledged,
            audit.found,
            audit.stored_events,
            audit.unanswered_but_stored,
            balancer.served(),
        );
        assert!(audit.acknowledged >= 600, "the load acknowledged too little to tell");
        assert_eq!(audit.missing, Vec::<Uuid>::new(), "acknowledged events missing from the store");
        assert_eq!(audit.duplicates, 0, "a command stored twice");
        assert!(takeover <= TAKEOVER, "the standby relay took {takeover:?} to publish");
        wait_until_projected(&store).await?;
        let (payments, notifications) = projection_mismatches(&store).await?;
        assert_eq!(payments, Vec::<String>::new(), "payments read model differs from the store");
        assert_eq!(notifications, Vec::<String>::new(), "not one notification per event");
        Ok(())
    }
    .await;
    let mut outcome = outcome;
    for process in apis.iter_mut().chain(relays.iter_mut()).chain(projectors.iter_mut()) {
        outcome = process.explain(outcome);
    }
    outcome
}
