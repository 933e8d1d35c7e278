//! The delivery queue in PostgreSQL (`deliveries`, `delivery_cursors`; see
//! `migrations/V018__deliveries.sql`): enqueue from the notifications read model, claim
//! with a lease, record the outcome, and keep the notification's overall status
//! (`notification_deliveries`) in step, in the same transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::channel::Outgoing;
use crate::error::DeliveryError;
use crate::settings::DeliveryStart;

/// Notifications examined per enqueue round.
const ENQUEUE_BATCH: i64 = 10_000;

/// Starts `channel`'s cursor if it has none: at the start (history is sent) or past every
/// notification the read model holds now (history is not).
const OPEN: &str = "
    INSERT INTO delivery_cursors (channel, cutover, enqueued_through)
    SELECT $1, start, start FROM (
        SELECT CASE WHEN $2 THEN 0 ELSE greatest(
            (SELECT coalesce(max(position), 0) FROM notifications),
            (SELECT coalesce(max(position), 0) FROM projection_watermarks
              WHERE projection = 'notifications')) END AS start) AS chosen
    ON CONFLICT (channel) DO NOTHING";

pub async fn open_channel(
    client: &impl GenericClient,
    channel: &str,
    start: DeliveryStart,
) -> Result<(), DeliveryError> {
    client.execute(OPEN, &[&channel, &(start == DeliveryStart::All)]).await?;
    Ok(())
}

const CURSOR: &str = "
    SELECT c.enqueued_through,
           coalesce((SELECT position FROM projection_watermarks WHERE projection = 'notifications'), 0)
      FROM delivery_cursors c WHERE c.channel = $1 FOR UPDATE";

/// Inserts the delivery rows of the notifications past the cursor (those above the
/// watermark again each round: one applied late gets its row then); returns the rows
/// added, the highest position examined and how many were examined.
const ADD: &str = "
    WITH candidates AS (
        SELECT id, order_id, position, created_at FROM notifications
         WHERE position > $2 ORDER BY position LIMIT $3),
    added AS (
        INSERT INTO deliveries (notification_id, channel, order_id, position, event_at)
        SELECT id, $1, order_id, position, created_at FROM candidates
        ON CONFLICT DO NOTHING RETURNING 1)
    SELECT (SELECT count(*) FROM added), (SELECT max(position) FROM candidates),
           (SELECT count(*) FROM candidates)";

const ADVANCE: &str =
    "UPDATE delivery_cursors SET enqueued_through = greatest(enqueued_through, $2) WHERE channel = $1";

/// Gives every new notification a delivery row on `channel`; returns how many were added.
pub async fn enqueue(
    client: &mut deadpool_postgres::Object,
    channel: &str,
) -> Result<u64, DeliveryError> {
    let transaction = client.transaction().await?;
    let Some(cursor) = transaction.query_opt(CURSOR, &[&channel]).await? else {
        return Ok(0);
    };
    let (through, watermark): (i64, i64) = (cursor.try_get(0)?, cursor.try_get(1)?);
    let row = transaction.query_one(ADD, &[&channel, &through, &ENQUEUE_BATCH]).await?;
    let (added, highest, examined): (i64, Option<i64>, i64) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    // Everything up to the watermark exists, and all of it past the cursor was examined
    // unless the batch was full.
    let reached = match highest {
        Some(highest) if examined >= ENQUEUE_BATCH => highest.min(watermark),
        _ => watermark,
    };
    if reached > through {
        transaction.execute(ADVANCE, &[&channel, &reached]).await?;
    }
    transaction.commit().await?;
    Ok(added.unsigned_abs())
}

/// Due messages of `$1`'s channels, oldest first, none while an earlier message of its
/// order on its channel is undelivered; claimed for `$3` seconds by `$4`.
const CLAIM: &str = "
    WITH due AS (
        SELECT d.notification_id, d.channel FROM deliveries d
         WHERE d.channel = ANY($1)
           AND d.status IN ('pending', 'sending')
           AND CASE WHEN d.status = 'pending' THEN d.next_attempt_at <= now()
                    ELSE d.lease_until < now() END
           AND NOT EXISTS (
               SELECT 1 FROM deliveries e
                WHERE e.order_id = d.order_id AND e.channel = d.channel
                  AND e.status IN ('pending', 'sending') AND e.position < d.position)
         ORDER BY d.position LIMIT $2
         FOR UPDATE OF d SKIP LOCKED)
    UPDATE deliveries d
       SET status = 'sending', attempts = d.attempts + 1, claimed_by = $4,
           lease_until = now() + make_interval(secs => $3), updated_at = now()
      FROM due, notifications n
     WHERE d.notification_id = due.notification_id AND d.channel = due.channel
       AND n.id = d.notification_id
    RETURNING d.notification_id, d.channel, d.attempts, d.order_id, n.customer_id, n.template,
              n.recipient, n.subject, n.body, d.event_at, d.position";

/// A claimed message and the channel it goes through.
pub struct Claimed {
    pub channel: String,
    pub message: Outgoing,
}

pub async fn claim(
    client: &impl GenericClient,
    channels: &[String],
    limit: i64,
    lease: Duration,
    me: &str,
) -> Result<Vec<Claimed>, DeliveryError> {
    let rows = client.query(CLAIM, &[&channels, &limit, &lease.as_secs_f64(), &me]).await?;
    rows.iter()
        .map(|row| {
            Ok(Claimed {
                channel: row.try_get(1)?,
                message: Outgoing {
                    id: row.try_get(0)?,
                    attempt: row.try_get(2)?,
                    order_id: row.try_get(3)?,
                    customer_id: row.try_get(4)?,
                    template: row.try_get(5)?,
                    recipient: row.try_get(6)?,
                    subject: row.try_get(7)?,
                    body: row.try_get(8)?,
                    created_at: row.try_get(9)?,
                    position: row.try_get(10)?,
                },
            })
        })
        .collect()
}

/// What became of one attempt.
#[derive(Clone, Debug)]
pub enum Outcome {
    Delivered,
    Retry { error: String, after: Duration },
    Failed { error: String },
}

/// A delivery is a fact whoever sent it: recorded even if this claim lapsed meanwhile.
const DELIVERED: &str = "
    UPDATE deliveries d
       SET status = 'delivered', delivered_at = now(), last_error = NULL, lease_until = NULL,
           updated_at = now()
      FROM unnest($1::uuid[], $2::text[]) AS o (id, channel)
     WHERE d.notification_id = o.id AND d.channel = o.channel AND d.status <> 'delivered'
    RETURNING d.channel, d.event_at, d.delivered_at";
/// A failure only while this claim holds: another dispatcher may have taken it over.
const RETRY: &str = "
    UPDATE deliveries d
       SET status = 'pending', last_error = o.error, lease_until = NULL,
           next_attempt_at = now() + make_interval(secs => o.after), updated_at = now()
      FROM unnest($1::uuid[], $2::text[], $4::text[], $5::float8[]) AS o (id, channel, error, after)
     WHERE d.notification_id = o.id AND d.channel = o.channel
       AND d.status = 'sending' AND d.claimed_by = $3";
const FAILED: &str = "
    UPDATE deliveries d
       SET status = 'failed', last_error = o.error, lease_until = NULL, updated_at = now()
      FROM unnest($1::uuid[], $2::text[], $4::text[]) AS o (id, channel, error)
     WHERE d.notification_id = o.id AND d.channel = o.channel
       AND d.status = 'sending' AND d.claimed_by = $3";

/// The notifications' overall status from their channels': `delivered` once all have,
/// `failed` if one failed for good, else `pending` (no row).
const OVERALL: &str = "
    WITH overall AS (
        SELECT notification_id AS id,
               CASE WHEN bool_or(status = 'failed') THEN 'failed'
                    WHEN bool_and(status = 'delivered') THEN 'delivered'
                    ELSE 'pending' END AS status
          FROM deliveries WHERE notification_id = ANY($1) GROUP BY notification_id),
    cleared AS (
        DELETE FROM notification_deliveries n USING overall o
         WHERE n.id = o.id AND o.status = 'pending')
    INSERT INTO notification_deliveries (id, status, updated_at)
    SELECT id, status, now() FROM overall WHERE status <> 'pending'
    ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, updated_at = now()";

/// One message's outcome, to record.
pub struct Attempted {
    pub id: Uuid,
    pub channel: String,
    pub outcome: Outcome,
}

/// A delivery this call recorded: its channel, when its event was recorded and when it was
/// delivered (for the latency).
pub type Recorded = (String, DateTime<Utc>, DateTime<Utc>);

/// Records every outcome of a round in one transaction; returns the deliveries it
/// recorded.
pub async fn record(
    client: &mut deadpool_postgres::Object,
    me: &str,
    attempted: &[Attempted],
) -> Result<Vec<Recorded>, DeliveryError> {
    let (mut delivered, mut retried, mut failed) =
        (Columns::default(), Columns::default(), Columns::default());
    for attempt in attempted {
        match &attempt.outcome {
            Outcome::Delivered => delivered.push(attempt, None, None),
            Outcome::Retry { error, after } => {
                retried.push(attempt, Some(error), Some(after.as_secs_f64()));
            }
            Outcome::Failed { error } => failed.push(attempt, Some(error), None),
        }
    }
    let ids: Vec<Uuid> = attempted.iter().map(|a| a.id).collect();
    let transaction = client.transaction().await?;
    let mut recorded = Vec::new();
    if !delivered.ids.is_empty() {
        for row in transaction.query(DELIVERED, &[&delivered.ids, &delivered.channels]).await? {
            recorded.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
        }
    }
    if !retried.ids.is_empty() {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&retried.ids, &retried.channels, &me, &retried.errors, &retried.delays];
        transaction.execute(RETRY, &params).await?;
    }
    if !failed.ids.is_empty() {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&failed.ids, &failed.channels, &me, &failed.errors];
        transaction.execute(FAILED, &params).await?;
    }
    transaction.execute(OVERALL, &[&ids]).await?;
    transaction.commit().await?;
    Ok(recorded)
}

/// Outcomes of one kind as the columns `unnest` reads.
#[derive(Default)]
struct Columns {
    ids: Vec<Uuid>,
    channels: Vec<String>,
    errors: Vec<String>,
    delays: Vec<f64>,
}

impl Columns {
    fn push(&mut self, attempt: &Attempted, error: Option<&String>, delay: Option<f64>) {
        self.ids.push(attempt.id);
        self.channels.push(attempt.channel.clone());
        self.errors.extend(error.cloned());
        self.delays.extend(delay);
    }
}

/// What `resend` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Resend {
    /// The channels that will send it again.
    Queued(Vec<String>),
    /// It has deliveries, none failed.
    NotFailed,
    /// No delivery of it exists.
    Unknown,
}

const RESEND: &str = "
    UPDATE deliveries SET status = 'pending', attempts = 0, last_error = NULL,
                          next_attempt_at = now(), updated_at = now()
     WHERE notification_id = $1 AND status = 'failed'
    RETURNING channel";

/// Sends a failed notification again on the channels where it failed.
pub async fn resend(
    client: &mut deadpool_postgres::Object,
    id: Uuid,
) -> Result<Resend, DeliveryError> {
    let transaction = client.transaction().await?;
    let rows = transaction.query(RESEND, &[&id]).await?;
    if rows.is_empty() {
        let known = transaction
            .query_opt("SELECT 1 FROM deliveries WHERE notification_id = $1 LIMIT 1", &[&id])
            .await?
            .is_some();
        return Ok(if known { Resend::NotFailed } else { Resend::Unknown });
    }
    transaction.execute(OVERALL, &[&vec![id]]).await?;
    transaction.commit().await?;
    let mut channels: Vec<String> =
        rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
    channels.sort();
    Ok(Resend::Queued(channels))
}

/// Messages not yet delivered or failed, per channel.
pub async fn depth(client: &impl GenericClient) -> Result<Vec<(String, i64)>, DeliveryError> {
    let rows = client
        .query(
            "SELECT channel, count(*) FROM deliveries
              WHERE status IN ('pending', 'sending') GROUP BY channel",
            &[],
        )
        .await?;
    rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
}
