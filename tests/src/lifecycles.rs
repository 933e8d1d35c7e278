//! A long history of orders that follow the domain rules, generated in SQL straight into
//! the store, fast (about 100 000 events per statement): what the rebuild and history
//! benches replay and query.
//!
//! Orders are placed (version 2, with a sales channel), paid in one or two captures,
//! sometimes after a declined attempt, fully paid, shipped, sometimes refunded or
//! cancelled: 4.9 events per order on average, 1000 customers, EUR, JPY and USD. An
//! order's commands are spread over the history (about a thousand orders apart), as they
//! would be in production, so a cut catches many orders half-way.

use std::time::{Duration, Instant};

use anyhow::Context;

/// Orders between two successive commands of one order, on average.
pub const LAG: i64 = 1_000;
/// Orders' worth of history per insert statement (about 100 000 events).
const ORDERS_PER_STATEMENT: i64 = 20_000;
/// The mean of the scenarios below: (5 × 5 + 2 × 6 + 4 + 3 + 5) / 10.
pub const EVENTS_PER_ORDER: f64 = 4.9;
pub const CUSTOMERS: i64 = 1_000;

/// The events whose slot is in `[$1, $2)`, of orders `0 .. $3`, in slot order. An order `n`
/// issues its `step`-th command at slot `n + step × lag(n)`, `lag(n)` in `[$4/2, 3·$4/2)`;
/// a command may append two events (a capture that settles the order also records
/// `OrderFullyPaid`), which share a correlation id and are adjacent. Slots increase with the
/// stream version, and the identity is taken after the sort, so every order's versions come
/// in `(tx_id, global_position)` order. Payload shapes are those of
/// `eventstore/tests/fixtures/v1/` (`OrderPlaced` at version 2, with `sales_channel`).
const GENERATE: &str = "
WITH steps (scenario, stream_version, step, kind) AS (
    VALUES (0, 1, 0, 'placed'), (0, 2, 1, 'capture_part'), (0, 3, 2, 'capture_rest'),
           (0, 4, 2, 'fully_paid'), (0, 5, 3, 'shipped'),
           (1, 1, 0, 'placed'), (1, 2, 1, 'failed'), (1, 3, 2, 'capture_all'),
           (1, 4, 2, 'fully_paid'), (1, 5, 3, 'shipped'), (1, 6, 4, 'refund_part'),
           (2, 1, 0, 'placed'), (2, 2, 1, 'capture_all'), (2, 3, 1, 'fully_paid'), (2, 4, 2, 'shipped'),
           (3, 1, 0, 'placed'), (3, 2, 1, 'failed'), (3, 3, 2, 'cancelled'),
           (4, 1, 0, 'placed'), (4, 2, 1, 'capture_all'), (4, 3, 1, 'fully_paid'),
           (4, 4, 2, 'refund_all'), (4, 5, 3, 'cancelled')
),
base AS (
    SELECT n,
           md5('ledger-rebuild-bench-' || n)::uuid AS order_id,
           'cus_' || abs(hashint8extended(n, 1) % $6::bigint) AS customer_id,
           (ARRAY['EUR', 'JPY', 'USD'])[1 + abs(hashint8extended(n, 2) % 3)] AS currency,
           (ARRAY['web', 'api', 'mobile', 'pos'])[1 + abs(hashint8extended(n, 3) % 4)] AS sales_channel,
           (ARRAY[0, 0, 0, 0, 0, 1, 1, 2, 3, 4])[1 + abs(hashint8extended(n, 4) % 10)] AS scenario,
           1 + abs(hashint8extended(n, 5) % 3) AS line_count,
           $4::bigint / 2 + abs(hashint8extended(n, 6) % $4::bigint) AS lag
      FROM generate_series(greatest(0, $1::bigint - 6 * $4::bigint), least($3::bigint, $2::bigint) - 1) AS n
),
orders AS (
    SELECT base.*, lines.lines, lines.total
      FROM base, LATERAL (
          SELECT jsonb_agg(jsonb_build_object(
                     'sku', 'SKU-' || ((base.n * 13 + i * 7) % 500),
                     'quantity', quantity,
                     'unit_price', jsonb_build_object('currency', base.currency, 'amount_minor', unit_price))
                   ORDER BY i) AS lines,
                 sum(quantity * unit_price)::bigint AS total
            FROM generate_series(1, base.line_count) AS i,
                 LATERAL (SELECT 1 + (base.n + i) % 3 AS quantity,
                                 100 + (base.n * 97 + i * 31) % 9900 AS unit_price) AS line
      ) AS lines
),
stored AS (
    SELECT o.n, o.order_id, s.stream_version, s.step, s.kind, o.n + s.step * o.lag AS slot,
           CASE s.kind
               WHEN 'placed' THEN 'OrderPlaced'
               WHEN 'failed' THEN 'PaymentFailed'
               WHEN 'fully_paid' THEN 'OrderFullyPaid'
               WHEN 'shipped' THEN 'OrderShipped'
               WHEN 'cancelled' THEN 'OrderCancelled'
               WHEN 'refund_part' THEN 'PaymentRefunded'
               WHEN 'refund_all' THEN 'PaymentRefunded'
               ELSE 'PaymentCaptured'
           END AS event_type,
           CASE s.kind
               WHEN 'placed' THEN 'place_order'
               WHEN 'failed' THEN 'record_payment_failure'
               WHEN 'shipped' THEN 'ship_order'
               WHEN 'cancelled' THEN 'cancel_order'
               WHEN 'refund_part' THEN 'refund_payment'
               WHEN 'refund_all' THEN 'refund_payment'
               ELSE 'capture_payment'
           END AS command,
           CASE s.kind
               WHEN 'placed' THEN jsonb_build_object(
                   'order_id', o.order_id, 'customer_id', o.customer_id,
                   'customer_email', o.customer_id || '@example.com', 'lines', o.lines,
                   'total', jsonb_build_object('currency', o.currency, 'amount_minor', o.total),
                   'sales_channel', o.sales_channel)
               WHEN 'capture_part' THEN jsonb_build_object(
                   'amount', jsonb_build_object('currency', o.currency, 'amount_minor', o.total / 3),
                   'method', 'card', 'payment_id', 'pay_1')
               WHEN 'capture_rest' THEN jsonb_build_object(
                   'amount', jsonb_build_object('currency', o.currency, 'amount_minor', o.total - o.total / 3),
                   'method', 'bank_transfer', 'payment_id', 'pay_2')
               WHEN 'capture_all' THEN jsonb_build_object(
                   'amount', jsonb_build_object('currency', o.currency, 'amount_minor', o.total),
                   'method', 'card', 'payment_id', 'pay_1')
               WHEN 'failed' THEN jsonb_build_object(
                   'amount', jsonb_build_object('currency', o.currency, 'amount_minor', o.total),
                   'reason', 'card declined', 'payment_id', 'pay_declined')
               WHEN 'fully_paid' THEN jsonb_build_object(
                   'total', jsonb_build_object('currency', o.currency, 'amount_minor', o.total))
               WHEN 'shipped' THEN jsonb_build_object(
                   'carrier', 'DHL', 'tracking_number', 'JD' || lpad(o.n::text, 10, '0'))
               WHEN 'refund_part' THEN jsonb_build_object(
                   'amount', jsonb_build_object('currency', o.currency, 'amount_minor', o.total / 4),
                   'reason', 'arrived damaged', 'refund_id', 're_1', 'payment_id', 'pay_1')
               WHEN 'refund_all' THEN jsonb_build_object(
                   'amount', jsonb_build_object('currency', o.currency, 'amount_minor', o.total),
                   'reason', 'customer changed their mind', 'refund_id', 're_1', 'payment_id', 'pay_1')
               WHEN 'cancelled' THEN jsonb_build_object('reason', 'customer changed their mind')
           END AS payload
      FROM orders o JOIN steps s ON s.scenario = o.scenario
     WHERE o.n + s.step * o.lag >= $1::bigint AND o.n + s.step * o.lag < $2::bigint
)
INSERT INTO events (stream_id, stream_version, event_id, event_type, event_version, payload, metadata)
SELECT order_id, stream_version,
       -- UUIDv7-like: a millisecond prefix that rises with the slot, as appends' ids do.
       (lpad(to_hex($5::bigint + slot), 12, '0') || '7' || lpad(to_hex(stream_version), 3, '0')
           || '8' || lpad(to_hex(n), 15, '0'))::uuid,
       event_type, CASE WHEN event_type = 'OrderPlaced' THEN 2 ELSE 1 END, payload,
       jsonb_build_object('correlation_id', md5('correlation-' || n || '-' || step)::uuid,
                          'causation_id', NULL, 'actor', 'write#1', 'command', command)
  FROM stored
 ORDER BY slot, n, stream_version";

/// Versions out of commit order: must be none.
const VERSIONS_OUT_OF_ORDER: &str = "
    SELECT count(*) FROM (
        SELECT stream_version,
               lag(stream_version) OVER (PARTITION BY stream_id ORDER BY tx_id, global_position) AS previous
          FROM events) AS e
     WHERE stream_version <> coalesce(previous, 0) + 1";

/// Fills the (empty) store with about `target` events of orders' lifecycles, checks that
/// each order's versions come in commit order and that every kind of stored event decodes
/// as the projections decode it, and takes the table's statistics; returns how long the
/// inserts took.
pub async fn generate(client: &tokio_postgres::Client, target: i64) -> anyhow::Result<Duration> {
    let orders = ((target as f64 / EVENTS_PER_ORDER).round() as i64).max(1);
    let slots = orders + 6 * LAG;
    let id_prefix = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    let mut low = 0;
    while low < slots {
        let high = low + ORDERS_PER_STATEMENT;
        client
            .execute(GENERATE, &[&low, &high, &orders, &LAG, &id_prefix, &CUSTOMERS])
            .await
            .context("generating events")?;
        low = high;
    }
    let generated_in = started.elapsed();
    // What autovacuum would do soon anyway: set hint bits and the visibility map and take
    // statistics now, so no measured read pays for them or races with them.
    client.batch_execute("VACUUM (ANALYZE) events").await?;

    let out_of_order: i64 = client.query_one(VERSIONS_OUT_OF_ORDER, &[]).await?.get(0);
    anyhow::ensure!(out_of_order == 0, "{out_of_order} events out of stream-version order");
    let samples = client
        .query(
            "(SELECT DISTINCT ON (event_type, event_version) event_type, event_version, payload
                FROM events ORDER BY event_type, event_version, global_position)
             UNION ALL
             (SELECT event_type, event_version, payload FROM events TABLESAMPLE SYSTEM (1))",
            &[],
        )
        .await?;
    for row in &samples {
        let (event_type, event_version): (String, i16) = (row.get(0), row.get(1));
        eventstore::schema::decode(&event_type, event_version, &row.get(2))
            .with_context(|| format!("decoding a stored {event_type} v{event_version}"))?;
    }
    Ok(generated_in)
}
