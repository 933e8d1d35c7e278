//! The saga's state in PostgreSQL (`migrations/V019__payment_processes.sql`): one row per
//! order with a revision, every revision kept for point-in-time answers, an inbox of the
//! events handled, and the workers' claims.
//!
//! Two writers change a process: the consumer (an event arrived) and a worker (a step
//! was taken). Each write names the revision it read; a write that finds another revision
//! changes nothing and is told so, and the writer starts again from the stored state. The
//! consumer locks the row for its read-modify-write; a worker holds a lease instead
//! (it calls the provider between reads and writes) and so can lose to the consumer,
//! which is safe: the step is repeated with the keys the stored state holds.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use eventstore::Cut;
use uuid::Uuid;

use crate::error::ServiceError;
use crate::process::PaymentProcess;

/// A process as stored: its state and the revision that state is.
#[derive(Clone, Debug)]
pub struct Stored {
    pub process: PaymentProcess,
    pub revision: i32,
    pub changed_at: DateTime<Utc>,
}

fn stored(row: &tokio_postgres::Row) -> Result<Stored, ServiceError> {
    let state: serde_json::Value = row.try_get(0)?;
    Ok(Stored {
        process: serde_json::from_value(state).map_err(ServiceError::State)?,
        revision: row.try_get(1)?,
        changed_at: row.try_get(2)?,
    })
}

/// Records that `event_id` was handled; `false` if it already was (a redelivery).
pub async fn first_delivery(
    client: &impl GenericClient,
    event_id: Uuid,
    order_id: Uuid,
    position: i64,
) -> Result<bool, ServiceError> {
    let inserted = client
        .execute(
            "INSERT INTO payment_process_inbox (event_id, order_id, position) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&event_id, &order_id, &position],
        )
        .await?;
    Ok(inserted == 1)
}

/// The process of `order_id`, locked until the transaction ends.
pub async fn lock(
    client: &impl GenericClient,
    order_id: Uuid,
) -> Result<Option<Stored>, ServiceError> {
    let row = client
        .query_opt(
            "SELECT state, revision, updated_at FROM payment_processes WHERE order_id = $1 FOR UPDATE",
            &[&order_id],
        )
        .await?;
    row.as_ref().map(stored).transpose()
}

/// Writes `process` as the revision after `read` (`None`: a new process). Answers the new
/// revision, or `None` when the stored revision is no longer `read` (someone else wrote).
/// `keep_lease`: the worker is mid-step and keeps its claim.
pub async fn save(
    client: &impl GenericClient,
    process: &PaymentProcess,
    read: Option<i32>,
    keep_lease: bool,
) -> Result<Option<i32>, ServiceError> {
    let state = serde_json::to_value(process).map_err(ServiceError::State)?;
    let step = process.step.name();
    // One statement: the row and its revision record together (the worker writes after
    // every step, so its round trips count).
    let row = match read {
        None => {
            client
                .query_opt(
                    "WITH written AS (
                        INSERT INTO payment_processes (order_id, state, step, due_at, revision, through_position)
                        VALUES ($1, $2, $3, $4, 1, $5)
                        ON CONFLICT (order_id) DO NOTHING RETURNING revision),
                     kept AS (
                        INSERT INTO payment_process_revisions (order_id, revision, state, through_position)
                        SELECT $1, revision, $2, $5 FROM written RETURNING revision)
                     SELECT revision FROM kept",
                    &[&process.order_id, &state, &step, &process.due_at, &process.through_position],
                )
                .await?
        }
        Some(read) => {
            client
                .query_opt(
                    "WITH written AS (
                        UPDATE payment_processes
                           SET state = $2, step = $3, due_at = $4, revision = revision + 1,
                               through_position = $5, updated_at = now(),
                               lease_until = CASE WHEN $7 THEN lease_until END
                         WHERE order_id = $1 AND revision = $6
                        RETURNING revision),
                     kept AS (
                        INSERT INTO payment_process_revisions (order_id, revision, state, through_position)
                        SELECT $1, revision, $2, $5 FROM written RETURNING revision)
                     SELECT revision FROM kept",
                    &[
                        &process.order_id,
                        &state,
                        &step,
                        &process.due_at,
                        &process.through_position,
                        &read,
                        &keep_lease,
                    ],
                )
                .await?
        }
    };
    row.map(|row| row.try_get(0)).transpose().map_err(Into::into)
}

/// Claims up to `limit` processes that are due and not claimed, for `lease`.
pub async fn claim_due(
    client: &impl GenericClient,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Stored>, ServiceError> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "UPDATE payment_processes p
                SET lease_until = now() + make_interval(secs => $2::bigint / 1000.0)
              WHERE p.order_id IN (
                    SELECT order_id FROM payment_processes
                     WHERE due_at <= now() AND (lease_until IS NULL OR lease_until < now())
                     ORDER BY due_at
                     LIMIT $1
                       FOR UPDATE SKIP LOCKED)
             RETURNING p.state, p.revision, p.updated_at",
            &[&limit, &lease_ms],
        )
        .await?;
    rows.iter().map(stored).collect()
}

/// Gives a claim back without changing the process (a step that could not finish), due
/// again no sooner than `after` from now.
pub async fn release(
    client: &impl GenericClient,
    order_id: Uuid,
    revision: i32,
    after: Duration,
) -> Result<(), ServiceError> {
    let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    client
        .execute(
            "UPDATE payment_processes
                SET lease_until = NULL,
                    due_at = CASE WHEN due_at IS NOT NULL
                                  THEN greatest(due_at, now() + make_interval(secs => $3::bigint / 1000.0))
                             END
              WHERE order_id = $1 AND revision = $2",
            &[&order_id, &revision, &after_ms],
        )
        .await?;
    Ok(())
}

/// When the next process falls due, if any does.
pub async fn next_due(client: &impl GenericClient) -> Result<Option<DateTime<Utc>>, ServiceError> {
    let row = client
        .query_one(
            "SELECT min(greatest(due_at, coalesce(lease_until, due_at))) FROM payment_processes
              WHERE due_at IS NOT NULL",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// The process of `order_id` inside `cut`: the latest revision changed at or before its
/// time and reflecting no event past its position.
pub async fn read(
    client: &impl GenericClient,
    order_id: Uuid,
    cut: Cut,
) -> Result<Option<Stored>, ServiceError> {
    let (position, time): (Option<i64>, Option<DateTime<Utc>>) = match cut {
        Cut::Latest => (None, None),
        Cut::Position(position) => (Some(position), None),
        Cut::Time(time) => (None, Some(time)),
        Cut::Both(position, time) => (Some(position), Some(time)),
        // A stream version names the order's own history; the process follows the store's
        // positions, so it is read whole.
        Cut::Version(_) => (None, None),
    };
    let row = client
        .query_opt(
            "SELECT state, revision, changed_at FROM payment_process_revisions
              WHERE order_id = $1
                AND ($2::bigint IS NULL OR through_position <= $2)
                AND ($3::timestamptz IS NULL OR changed_at <= $3)
              ORDER BY revision DESC LIMIT 1",
            &[&order_id, &position, &time],
        )
        .await?;
    row.as_ref().map(stored).transpose()
}

/// How many processes are at each step, and how many are due now.
pub async fn counts(client: &impl GenericClient) -> Result<Vec<(String, i64, i64)>, ServiceError> {
    let rows = client
        .query(
            "SELECT step, count(*), count(*) FILTER (WHERE due_at <= now())
               FROM payment_processes GROUP BY step ORDER BY step",
            &[],
        )
        .await?;
    rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))).collect()
}
