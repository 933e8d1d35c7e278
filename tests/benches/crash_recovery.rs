//! How soon the read models are current again after a crash: the real `ledger` binary
//! killed with SIGKILL under load, `BENCH_KILLS` times (default 10) in each of two shapes.
//!
//! - **restart**: one process with every role, killed and started again at once; the time
//!   from the restart to `/readyz` answering 200, and to every projection's watermark
//!   covering every event stored before the kill.
//! - **survivor**: an API process and two projector processes; the projector holding the
//!   most partitions is killed (and started again afterwards, for the next round, which
//!   kills once the group has given out every partition again under load); the time from
//!   the kill to every watermark covering the store (the load stops at the kill, so the
//!   store stops growing), and from a round's start to the group holding every partition
//!   again (the members rejoin once starved; see `bus::ConsumerSettings::orphaned_after`).
//!
//! `cargo build --release -p ledger && LEDGER_BIN=target/release/ledger cargo bench -p
//! ledger-tests --bench crash_recovery` (`BENCH_CLIENTS`, default 8).

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bench::measure::{env_or, percentile};
use ledger_tests::{poll_until, start_load, LedgerConfig, LedgerProcess, TestDatabase};
use serde_json::Value;
use tokio_postgres::Client;

const DEADLINE: Duration = Duration::from_secs(60);
const CAPTURE_MINOR: i64 = 1000;

/// Waits until both projections' watermarks are at or past `position`.
async fn until_covered(store: &Client, position: i64) -> anyhow::Result<()> {
    poll_until(DEADLINE, "the watermarks to cover the store", || async {
        let covered: i64 = store
            .query_one(
                "SELECT count(*) FROM projection_watermarks
                  WHERE projection IN ('payments', 'notifications') AND position >= $1",
                &[&position],
            )
            .await?
            .get(0);
        Ok((covered == 2).then_some(()))
    })
    .await
}

async fn stored_up_to(store: &Client) -> anyhow::Result<i64> {
    Ok(store.query_one("SELECT coalesce(max(global_position), 0) FROM events", &[]).await?.get(0))
}

fn summary(what: &str, mut times: Vec<Duration>) -> String {
    times.sort();
    format!(
        "{what}: median {:.2?}, max {:.2?} over {} kills",
        percentile(&times, 0.5),
        times.last().copied().unwrap_or_default(),
        times.len()
    )
}

async fn restart_rounds(kills: usize, clients: u32) -> anyhow::Result<Vec<String>> {
    let database = TestDatabase::create().await?;
    let store = database.client().await?;
    let config = LedgerConfig::new(&database.url)?.roles("api,relay,projector");
    let mut ledger = LedgerProcess::start(config).await?;
    let (mut to_ready, mut to_current, mut ready_to_current) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..kills {
        let load = start_load(&ledger, "cus_bench_restart", clients, Some(CAPTURE_MINOR))?;
        load.wait_for_acknowledged(500, DEADLINE).await?;
        ledger.kill_9().await?;
        let restarted = Instant::now();
        let target = stored_up_to(&store).await?;
        ledger.restart().await?;
        let ready = Instant::now();
        until_covered(&store, target).await?;
        let current = Instant::now();
        load.stop().await?;
        to_ready.push(ready - restarted);
        to_current.push(current - restarted);
        ready_to_current.push(current.saturating_duration_since(ready));
    }
    Ok(vec![
        summary("restart: restart → /readyz 200", to_ready),
        summary("restart: restart → watermarks cover the store", to_current),
        summary("restart: /readyz 200 → watermarks cover the store", ready_to_current),
    ])
}

/// How many partitions (of both projections) `ledger`'s workers hold.
async fn held(ledger: &LedgerProcess) -> anyhow::Result<usize> {
    let status = ledger.get_json("/v1/admin/projections").await?;
    Ok(status["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|worker| worker["partitions"].as_array().map_or(0, Vec::len))
        .sum())
}

/// Waits until the projectors' workers hold all 16 partitions between them; returns how
/// many each holds.
async fn until_settled(projectors: &[LedgerProcess; 2]) -> anyhow::Result<[usize; 2]> {
    poll_until(Duration::from_secs(120), "the group to give out every partition", || async {
        let counts = [held(&projectors[0]).await?, held(&projectors[1]).await?];
        Ok((counts[0] + counts[1] == 16).then_some(counts))
    })
    .await
}

async fn survivor_rounds(kills: usize, clients: u32) -> anyhow::Result<Vec<String>> {
    let database = TestDatabase::create().await?;
    let store = database.client().await?;
    let config = LedgerConfig::new(&database.url)?.roles("api,relay");
    let writer = LedgerProcess::start(config.clone()).await?;
    let mut projectors = [
        LedgerProcess::start(config.clone().roles("projector")).await?,
        LedgerProcess::start(config.roles("projector")).await?,
    ];
    let (mut to_current, mut to_bus) = (Vec::new(), Vec::new());
    let mut held_by_victim = Vec::new();
    for _ in 0..kills {
        let started = Instant::now();
        let load = start_load(&writer, "cus_bench_survivor", clients, Some(CAPTURE_MINOR))?;
        let counts = until_settled(&projectors).await?;
        to_bus.push(started.elapsed());
        load.wait_for_acknowledged(500, DEADLINE).await?;
        let victim = usize::from(counts[1] > counts[0]);
        projectors[victim].kill_9().await?;
        let killed = Instant::now();
        load.stop().await?;
        until_covered(&store, stored_up_to(&store).await?).await?;
        to_current.push(killed.elapsed());
        held_by_victim.push(counts[victim]);
        projectors[victim].restart().await?;
    }
    let survivor: Value = projectors[0].get_json("/v1/admin/projections").await?["workers"].clone();
    Ok(vec![
        summary("survivor: kill → watermarks cover the store", to_current),
        summary("survivor: round's load start → the group holds every partition", to_bus),
        format!("survivor: partitions the killed member held, per kill: {held_by_victim:?} of 16"),
        format!("survivor: a projector's workers at the end: {survivor}"),
    ])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let kills: usize = env_or("BENCH_KILLS", 10);
    let clients: u32 = env_or("BENCH_CLIENTS", 8);
    let mut lines = restart_rounds(kills, clients).await?;
    lines.extend(survivor_rounds(kills, clients).await?);
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
