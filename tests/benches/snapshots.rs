//! Rehydrating an order for a command: the whole history folded vs its snapshot and the
//! events after it, for orders of 10, 1 000 and 10 000 events, in the same run.
//!
//! `cargo bench -p ledger-tests --bench snapshots` (`BENCH_ROUNDS`, default 200). Each
//! order is an `OrderPlaced` and failed payment attempts (a state that stays small, so
//! the figure is the cost of reading, not of a growing state). The snapshot is the one
//! commands take (every 100 events), so the tail is what a command really reads.

// A test that reads a value of another type than it expects should stop right there.
#![allow(clippy::disallowed_methods)]

use bench::measure::percentile;
use std::time::{Duration, Instant};

use commands::rehydrate;
use domain::ORDER_SHAPE_VERSION;
use eventstore::snapshot::{load_from_snapshots, save_snapshots, SnapshotState, SNAPSHOT_EVERY};
use eventstore::{load_stream, Cut};
use ledger_tests::TestDatabase;
use uuid::Uuid;

/// Appends an order of `events` events: placed, then failed attempts.
async fn order_of(client: &deadpool_postgres::Object, events: i32) -> anyhow::Result<Uuid> {
    let order_id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, event_version, payload)
             SELECT $1, v, gen_random_uuid(),
                    CASE WHEN v = 1 THEN 'OrderPlaced' ELSE 'PaymentFailed' END,
                    CASE WHEN v = 1 THEN 2 ELSE 1 END,
                    CASE WHEN v = 1 THEN jsonb_build_object(
                        'order_id', $3::text, 'customer_id', 'cus_bench',
                        'customer_email', 'bench@example.com',
                        'lines', jsonb_build_array(jsonb_build_object('sku', 'BOOK-1', 'quantity', 1,
                            'unit_price', jsonb_build_object('amount_minor', 1250, 'currency', 'EUR'))),
                        'total', jsonb_build_object('amount_minor', 1250, 'currency', 'EUR'),
                        'sales_channel', 'api')
                    ELSE jsonb_build_object('payment_id', 'pay_' || v,
                        'amount', jsonb_build_object('amount_minor', 1250, 'currency', 'EUR'),
                        'reason', 'card declined') END
               FROM generate_series(1, $2) AS v",
            &[&order_id, &events, &order_id.to_string()],
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(order_id)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize =
        std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let database = TestDatabase::create().await?;
    let pool = eventstore::connect(&eventstore::PoolSettings {
        database_url: database.url.clone(),
        max_size: 2,
        wait_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(60),
    })?;
    let client = pool.get().await?;
    println!(
        "rehydrating one order, {rounds} rounds each (snapshot every {SNAPSHOT_EVERY} events)"
    );
    println!(
        "{:>8} {:>22} {:>22} {:>8}",
        "events", "whole history p50/p99", "snapshot+tail p50/p99", "tail"
    );
    for events in [10, 1_000, 10_000] {
        let order_id = order_of(&client, events).await?;
        // The snapshot a command would have taken last: at the last multiple of 100.
        let history = load_stream(&client, order_id, Cut::Latest).await?;
        let at = (events as u32 / SNAPSHOT_EVERY) * SNAPSHOT_EVERY;
        if at > 0 {
            let (state, _) =
                rehydrate::fold_all(&history[..at as usize]).map_err(|e| anyhow::anyhow!("{e}"))?;
            let snapshot = rehydrate::snapshot_of(&state).map_err(|e| anyhow::anyhow!("{e}"))?;
            let snapshot =
                SnapshotState { stream_id: order_id, stream_version: at, state: snapshot };
            save_snapshots(&client, ORDER_SHAPE_VERSION, &[snapshot]).await?;
        }

        let mut whole = Vec::with_capacity(rounds);
        let mut snapshotted = Vec::with_capacity(rounds);
        let mut tail = 0;
        for _ in 0..rounds {
            let started = Instant::now();
            let history = load_stream(&client, order_id, Cut::Latest).await?;
            let (_, version) = rehydrate::fold_all(&history).map_err(|e| anyhow::anyhow!("{e}"))?;
            whole.push(started.elapsed());
            anyhow::ensure!(version == events as u32);

            let started = Instant::now();
            let mut loaded = load_from_snapshots(&client, &[order_id], ORDER_SHAPE_VERSION).await?;
            let loaded = loaded.remove(&order_id).unwrap_or_default();
            tail = loaded.events.len();
            let (_, version) = rehydrate::fold_loaded(loaded)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .ok_or_else(|| anyhow::anyhow!("the snapshot was not usable"))?;
            snapshotted.push(started.elapsed());
            anyhow::ensure!(version == events as u32);
        }
        whole.sort();
        snapshotted.sort();
        println!(
            "{events:>8} {:>10.2?} / {:>9.2?} {:>10.2?} / {:>9.2?} {tail:>8}",
            percentile(&whole, 0.5),
            percentile(&whole, 0.99),
            percentile(&snapshotted, 0.5),
            percentile(&snapshotted, 0.99),
        );
    }
    Ok(())
}
