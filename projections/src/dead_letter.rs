//! Dead letters: messages a projection could not apply after its retries, parked on the
//! bus's dead-letter channel (by the consumer loop) and recorded in the `dead_letters`
//! table (here), so the partition keeps moving and an operator can see, fix and re-drive
//! them.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

use crate::apply::Durability;
use crate::error::ApplyError;
use crate::event::ProjectedEvent;
use crate::kind::ProjectionKind;

/// A message that failed, as the consumer saw it.
pub struct FailedMessage<'a> {
    pub projection: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub error: &'a str,
    pub attempts: u32,
}

const INSERT: &str = "
    INSERT INTO dead_letters (projection, topic, partition, \"offset\", key, payload, error, attempts)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Records a message that was parked on the dead-letter channel.
pub async fn record(
    client: &impl GenericClient,
    message: &FailedMessage<'_>,
) -> Result<(), ApplyError> {
    let key = message.key.map(|k| String::from_utf8_lossy(k).into_owned());
    let attempts = i32::try_from(message.attempts).unwrap_or(i32::MAX);
    client
        .execute(
            INSERT,
            &[
                &message.projection,
                &message.topic,
                &message.partition,
                &message.offset,
                &key,
                &message.payload,
                &message.error,
                &attempts,
            ],
        )
        .await?;
    Ok(())
}

/// Whether `consumer` has parked the message at this place of `topic` before.
const ALREADY_PARKED: &str = "
    SELECT EXISTS (
        SELECT FROM dead_letters
        WHERE projection = $1 AND topic = $2 AND partition = $3 AND \"offset\" = $4)";

/// Whether `projection` has parked the message at `topic`, `partition`, `offset` before.
pub async fn already_parked(
    client: &impl GenericClient,
    projection: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<bool, ApplyError> {
    let row = client.query_one(ALREADY_PARKED, &[&projection, &topic, &partition, &offset]).await?;
    Ok(row.try_get(0)?)
}

#[derive(Clone, Debug, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub projection: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    /// The envelope's `event_type`, when the message is one.
    pub event_type: Option<String>,
    /// The message as parked: its JSON, or its bytes as text when it is not JSON (a
    /// poison message often is not); null when it had no body.
    pub payload: serde_json::Value,
    pub error: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub redriven_at: Option<DateTime<Utc>>,
}

pub async fn list(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<DeadLetter>, eventstore::StoreError> {
    let rows = client
        .query(
            "SELECT id, projection, topic, partition, \"offset\", key, error, attempts, created_at, redriven_at, payload
               FROM dead_letters ORDER BY id DESC LIMIT $1",
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let bytes: Option<Vec<u8>> = row.try_get(10)?;
            let payload = bytes.map_or(serde_json::Value::Null, |bytes| {
                serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
                })
            });
            let event_type = payload["event_type"].as_str().map(str::to_owned);
            Ok(DeadLetter {
                id: row.try_get(0)?,
                projection: row.try_get(1)?,
                topic: row.try_get(2)?,
                partition: row.try_get(3)?,
                offset: row.try_get(4)?,
                key: row.try_get(5)?,
                event_type,
                payload,
                error: row.try_get(6)?,
                attempts: row.try_get(7)?,
                created_at: row.try_get(8)?,
                redriven_at: row.try_get(9)?,
            })
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("no dead letter {0}")]
    NotFound(i64),
    #[error("dead letter {0} was already re-driven")]
    AlreadyRedriven(i64),
    #[error("it still fails: {0}")]
    StillFailing(String),
    #[error(transparent)]
    Store(#[from] eventstore::StoreError),
}

impl From<tokio_postgres::Error> for RedriveError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Store(error.into())
    }
}

/// Applies a parked message through its projection again (after a fix), exactly once, and
/// marks it re-driven in the same transaction. What it applied: `true`, or `false` when
/// the event had meanwhile been applied (a duplicate).
pub async fn redrive(pool: &deadpool_postgres::Pool, id: i64) -> Result<bool, RedriveError> {
    let mut client = pool.get().await.map_err(eventstore::StoreError::from)?;
    let transaction = client.transaction().await?;
    let row = transaction
        .query_opt("SELECT projection, payload, redriven_at IS NOT NULL FROM dead_letters WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .ok_or(RedriveError::NotFound(id))?;
    if row.try_get::<_, bool>(2)? {
        return Err(RedriveError::AlreadyRedriven(id));
    }
    let projection: String = row.try_get(0)?;
    let payload: Option<Vec<u8>> = row.try_get(1)?;
    let kind = ProjectionKind::parse(&projection)
        .ok_or_else(|| RedriveError::StillFailing(format!("unknown projection {projection}")))?;
    let event = ProjectedEvent::from_message(payload.as_deref().unwrap_or_default())
        .map_err(|error| RedriveError::StillFailing(error.to_string()))?;
    let outcome = kind
        .apply(&transaction, std::slice::from_ref(&event), Durability::Durable, "")
        .await
        .map_err(|error| RedriveError::StillFailing(error.to_string()))?;
    transaction
        .execute("UPDATE dead_letters SET redriven_at = now() WHERE id = $1", &[&id])
        .await?;
    transaction.commit().await?;
    Ok(outcome.applied > 0)
}
