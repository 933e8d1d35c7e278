//! Projection apply throughput with one projector process and with two sharing each
//! consumer group: separate `ledger --roles projector` processes on one database and one
//! broker, applying the same backlog, which a `ledger --roles relay` process published
//! first.
//!
//! `cargo build --release -p ledger && cargo bench -p ledger-tests --bench scale_out`
//! (needs PostgreSQL and Kafka; `LEDGER_BIN` names the binary, else the one beside the
//! bench; `BENCH_EVENTS` the backlog, default 200 000). The rate is taken from 10 % of the
//! backlog applied to all of it, so the processes' start and the group's first join are
//! left out; a second member joining later rebalances inside the measured span, as it
//! would in production.

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bench::measure::env_or;
use ledger_tests::{history, poll_until, LedgerConfig, LedgerProcess, TestDatabase};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: i64 = env_or("BENCH_EVENTS", 200_000);
    let mut rates = Vec::new();
    for processes in [1, 2] {
        let rate = apply_rate(events, processes).await?;
        println!(
            "{processes} projector process(es): both projections applied {events} events each \
             at {rate:.0} events/s per projection"
        );
        rates.push(rate);
    }
    println!("two processes / one: {:.2}", rates[1] / rates[0]);
    Ok(())
}

/// Events applied per second and projection by `processes` projector processes.
async fn apply_rate(events: i64, processes: usize) -> anyhow::Result<f64> {
    let database = TestDatabase::create().await?;
    let client = database.client().await?;
    history::paid_orders(&client, "scale-out", events).await?;
    let config = LedgerConfig::new(&database.url)?;
    let relay = LedgerProcess::start(config.clone().roles("relay")).await?;
    poll_until(Duration::from_secs(600), "the relay to publish the backlog", || async {
        Ok((relay.relay_role().await?.1 >= events.unsigned_abs()).then_some(()))
    })
    .await?;

    let mut projectors = Vec::new();
    for _ in 0..processes {
        projectors.push(LedgerProcess::start(config.clone().roles("projector")).await?);
    }
    let applied = || async {
        let row = client
            .query_one("SELECT coalesce(sum(applied_events), 0)::int8 FROM projection_status", &[])
            .await?;
        anyhow::Ok(row.get::<_, i64>(0))
    };
    let whole = 2 * events;
    let from = poll_until(Duration::from_secs(600), "a tenth of the backlog applied", || async {
        let done = applied().await?;
        Ok((done >= whole / 10).then(|| (Instant::now(), done)))
    })
    .await?;
    poll_until(Duration::from_secs(600), "the whole backlog applied", || async {
        Ok((applied().await? >= whole).then_some(()))
    })
    .await?;
    let per_projection = (whole - from.1) as f64 / 2.0;
    Ok(per_projection / from.0.elapsed().as_secs_f64())
}
