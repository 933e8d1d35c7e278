//! Idempotency records: claiming keys and recording the outcome to replay.
//!
//! The claim is an `INSERT … ON CONFLICT DO NOTHING` inside the command's transaction.
//! A concurrent request with the same key blocks on the primary key until the first
//! transaction ends: if it committed, the second finds its stored outcome; if it rolled
//! back (the command was refused), the second claims the key itself and runs the command.
//! Only committed, successful outcomes are ever replayed.
//!
//! A record is kept for a retention (24 hours by default, as the big payment APIs keep
//! theirs): after it the key is unknown again and a request with it is a fresh command.
//! [`prune`] deletes the expired records in small batches.
//!
//! The record keeps the outcome the command layer serialised (`response_body`), never a
//! protocol's status: records written before that carry `response_status` 201 beside the
//! same body, which reads the same.

/// Claims each key, or takes over a record older than the retention (`$4`, in
/// milliseconds) that the pruner has not deleted yet: past the retention a key is unknown,
/// whether its record is still on disk or not.
use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::GenericClient;

use crate::error::StoreError;

pub(crate) const CLAIM_ALL: &str = "
    INSERT INTO idempotency_keys (idempotency_key, request_fingerprint, stream_id)
    SELECT k, sha256(f), s FROM unnest($1::text[], $2::bytea[], $3::uuid[]) AS t (k, f, s)
    ON CONFLICT (idempotency_key) DO UPDATE
       SET request_fingerprint = EXCLUDED.request_fingerprint, stream_id = EXCLUDED.stream_id,
           response_status = NULL, response_body = NULL, created_at = now()
     WHERE idempotency_keys.created_at < now() - $4::int8 * interval '1 millisecond'
    RETURNING idempotency_key";

pub(crate) const LOOKUP_ALL: &str = "
    SELECT t.k, i.request_fingerprint = sha256(t.f), i.response_body
      FROM unnest($1::text[], $2::bytea[]) AS t (k, f)
      JOIN idempotency_keys i ON i.idempotency_key = t.k";

pub(crate) const RELEASE_ALL: &str = "DELETE FROM idempotency_keys WHERE idempotency_key = ANY($1)";

pub(crate) const RECORD_ALL: &str = "
    UPDATE idempotency_keys i SET response_body = t.b
      FROM unnest($1::text[], $2::bytea[]) AS t (k, b)
     WHERE i.idempotency_key = t.k";

/// One key to claim: the key, and what makes two uses of it "the same request" (only its
/// SHA-256 is stored).
#[derive(Clone, Debug)]
pub struct KeyClaim {
    pub key: String,
    pub fingerprint: Vec<u8>,
    pub stream_id: uuid::Uuid,
}

/// The outcome of claiming an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use of the key: run the command and record its outcome.
    Claimed,
    /// The key was used before with the same request: answer with its stored outcome.
    Replay(Vec<u8>),
    /// The key was used before with a different request.
    Mismatch,
}

/// How long an idempotency record is kept by default: Stripe's documented 24 hours, the
/// shortest of the big payment APIs, long enough for any client's retries.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// One batch of expired records, oldest first. Rows a command holds (a retry claiming its
/// key right now) are skipped, not waited for: the pruner never blocks a writer, and a
/// writer waits at most for one small batch.
const PRUNE_BATCH: &str = "
    DELETE FROM idempotency_keys
     WHERE idempotency_key = ANY (ARRAY(
           SELECT idempotency_key FROM idempotency_keys
            WHERE created_at < now() - $1::int8 * interval '1 millisecond'
            ORDER BY created_at
            LIMIT $2
              FOR UPDATE SKIP LOCKED))
       AND created_at < now() - $1::int8 * interval '1 millisecond'";

/// Deletes the records older than `retention`, `batch` rows per transaction, until none
/// is left; returns how many it deleted.
pub async fn prune(
    client: &impl GenericClient,
    retention: Duration,
    batch: u32,
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(PRUNE_BATCH).await?;
    let retention = millis(retention);
    let batch = i64::from(batch.max(1));
    let mut deleted = 0;
    loop {
        let rows = client.execute(&statement, &[&retention, &batch]).await?;
        deleted += rows;
        if rows < batch.unsigned_abs() {
            return Ok(deleted);
        }
    }
}

/// The keys of `keys` this transaction claimed ([`CLAIM_ALL`], prepared as `claim`); sent
/// when first polled. Keys must be distinct within one call.
pub(crate) async fn claim(
    client: &impl GenericClient,
    claim: &tokio_postgres::Statement,
    keys: &[KeyClaim],
    retention: Duration,
) -> Result<Vec<String>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
    let requests: Vec<&[u8]> = keys.iter().map(|k| k.fingerprint.as_slice()).collect();
    let streams: Vec<uuid::Uuid> = keys.iter().map(|k| k.stream_id).collect();
    let retention = millis(retention);
    let rows = client.query(claim, &[&names, &requests, &streams, &retention]).await?;
    Ok(rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?)
}

/// Each key's claim, in order, given the keys this transaction claimed: the others were
/// used before, and their records say whether with the same request.
pub(crate) async fn resolve_claims(
    client: &impl GenericClient,
    keys: &[KeyClaim],
    claimed: Vec<String>,
) -> Result<Vec<Claim>, StoreError> {
    let taken: Vec<&KeyClaim> = keys.iter().filter(|k| !claimed.contains(&k.key)).collect();
    let mut earlier: HashMap<String, Claim> = HashMap::new();
    if !taken.is_empty() {
        let names: Vec<&str> = taken.iter().map(|k| k.key.as_str()).collect();
        let requests: Vec<&[u8]> = taken.iter().map(|k| k.fingerprint.as_slice()).collect();
        let lookup = client.prepare_cached(LOOKUP_ALL).await?;
        for row in client.query(&lookup, &[&names, &requests]).await? {
            let key: String = row.try_get(0)?;
            let same: bool = row.try_get(1)?;
            let outcome: Option<Vec<u8>> = row.try_get(2)?;
            let claim = match (same, outcome) {
                (false, _) => Claim::Mismatch,
                (true, Some(outcome)) => Claim::Replay(outcome),
                // Outcomes are recorded before the claiming transaction commits.
                (true, None) => {
                    return Err(StoreError::Invariant(format!(
                        "idempotency record {key} has no outcome"
                    )))
                }
            };
            earlier.insert(key, claim);
        }
    }
    keys.iter()
        .map(|k| {
            if claimed.contains(&k.key) {
                Ok(Claim::Claimed)
            } else {
                // Claimed by nobody, yet taken: only possible if it vanished meanwhile,
                // which the primary key's lock rules out.
                earlier.remove(&k.key).ok_or_else(|| {
                    StoreError::Invariant(format!("idempotency key {} vanished", k.key))
                })
            }
        })
        .collect()
}

/// A retention in whole milliseconds, as the statements take it.
pub(crate) fn millis(retention: Duration) -> i64 {
    i64::try_from(retention.as_millis()).unwrap_or(i64::MAX)
}
