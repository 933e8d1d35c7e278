//! History written straight to the store, fast, for benches and specs that need a large
//! backlog: plain INSERTs in transactions of 1 000 events, as a busy ledger would have
//! stored them.

/// `events` events, four `PaymentCaptured` per stream (a correlation id each): what the
/// relay benches publish.
pub async fn captures(client: &tokio_postgres::Client, events: i64) -> anyhow::Result<()> {
    for chunk in 0..(events / 1_000) {
        client
            .execute(
                "INSERT INTO events (stream_id, stream_version, event_id, event_type, payload, metadata)
                 SELECT md5(($1::bigint * 1000 + n / 4)::text)::uuid, n % 4 + 1, gen_random_uuid(),
                        'PaymentCaptured',
                        jsonb_build_object('payment_id', 'pay_' || n, 'method', 'card',
                            'amount', jsonb_build_object('amount_minor', 1250, 'currency', 'EUR')),
                        jsonb_build_object('correlation_id', gen_random_uuid()::text)
                   FROM generate_series(0, 999) AS n",
                &[&chunk],
            )
            .await?;
    }
    Ok(())
}

/// How the orders of [`paid_orders`] are identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderIds {
    /// Derived from the seed by a hash: scattered over every index keyed by order.
    Random,
    /// UUIDv7-like, rising with the order's number, as ids made at placement time are:
    /// each index keyed by order grows at its right edge.
    TimeOrdered,
}

/// `events / 4` orders of four events each (placed, two captures, fully paid; 25.00 EUR),
/// whose ids derive from `seed`: what the read models can apply.
pub async fn paid_orders(
    client: &tokio_postgres::Client,
    seed: &str,
    events: i64,
) -> anyhow::Result<()> {
    paid_orders_with(client, seed, events, OrderIds::Random).await
}

/// [`paid_orders`] with ids of the given kind.
pub async fn paid_orders_with(
    client: &tokio_postgres::Client,
    seed: &str,
    events: i64,
    ids: OrderIds,
) -> anyhow::Result<()> {
    let id = match ids {
        OrderIds::Random => "md5($2 || ($1::bigint * 250 + n))::uuid",
        OrderIds::TimeOrdered => {
            "(lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') || '7'
              || lpad(to_hex(($1::bigint * 250 + n) % 4096), 3, '0') || '8'
              || lpad(to_hex($1::bigint * 250 + n), 15, '0') || substr($2::text, 1, 0))::uuid"
        }
    };
    for chunk in 0..(events / 1_000) {
        client
            .execute(
                &format!("WITH orders AS (
                     SELECT {id} AS id, 'cus_' || (n % 100) AS customer
                       FROM generate_series(0, 249) AS n)
                 INSERT INTO events (stream_id, stream_version, event_id, event_type, payload, metadata)
                 SELECT id, v, gen_random_uuid(), t, p, '{{}}'::jsonb
                   FROM orders, LATERAL (VALUES
                     (1, 'OrderPlaced', jsonb_build_object('order_id', id, 'customer_id', customer,
                         'customer_email', customer || '@example.com',
                         'lines', jsonb_build_array(jsonb_build_object('sku', 'BOOK-1', 'quantity', 2,
                             'unit_price', jsonb_build_object('amount_minor', 1250, 'currency', 'EUR'))),
                         'total', jsonb_build_object('amount_minor', 2500, 'currency', 'EUR'))),
                     (2, 'PaymentCaptured', jsonb_build_object('payment_id', 'pay_1', 'method', 'card',
                         'amount', jsonb_build_object('amount_minor', 1000, 'currency', 'EUR'))),
                     (3, 'PaymentCaptured', jsonb_build_object('payment_id', 'pay_2', 'method', 'card',
                         'amount', jsonb_build_object('amount_minor', 1500, 'currency', 'EUR'))),
                     (4, 'OrderFullyPaid', jsonb_build_object('total',
                         jsonb_build_object('amount_minor', 2500, 'currency', 'EUR')))
                   ) AS e (v, t, p)
                  ORDER BY id, v"),
                &[&chunk, &seed],
            )
            .await?;
    }
    Ok(())
}

/// The envelope the relay publishes for the stored event `version` of `stream_id`, as a
/// JSON value: what a spec parks, re-drives or feeds to a worker by hand.
pub async fn stored_envelope(
    client: &tokio_postgres::Client,
    stream_id: uuid::Uuid,
    version: i32,
) -> anyhow::Result<serde_json::Value> {
    let row = client
        .query_one(
            "SELECT event_id, event_type, event_version, global_position, recorded_at, payload
               FROM events WHERE stream_id = $1 AND stream_version = $2",
            &[&stream_id, &version],
        )
        .await?;
    Ok(serde_json::json!({
        "event_id": row.get::<_, uuid::Uuid>(0), "event_type": row.get::<_, String>(1),
        "event_version": row.get::<_, i16>(2), "stream_id": stream_id, "stream_version": version,
        "position": row.get::<_, i64>(3),
        "recorded_at": row.get::<_, chrono::DateTime<chrono::Utc>>(4),
        "correlation_id": null, "causation_id": null, "data": row.get::<_, serde_json::Value>(5),
    }))
}

/// Stores one event straight into the store, as an earlier release (or another writer)
/// would have: a fixture for the specs of stored versions and of the published contract.
pub async fn insert_event(
    client: &tokio_postgres::Client,
    stream_id: uuid::Uuid,
    stream_version: i32,
    (event_type, event_version): (&str, i16),
    payload: &serde_json::Value,
    metadata: &serde_json::Value,
) -> anyhow::Result<()> {
    client
        .execute(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, event_version, payload, metadata)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &stream_id,
                &stream_version,
                &uuid::Uuid::now_v7(),
                &event_type,
                &event_version,
                payload,
                metadata,
            ],
        )
        .await?;
    Ok(())
}
