//! Idempotency records: claiming keys and recording the outcome to replay.
//!
//! The claim is an `INSERT … ON CONFLICT DO NOTHING` inside the command's transaction.
//! A concurrent request with the same key blocks on the primary key until the first
//! transaction ends: if it committed, the second finds its stored outcome; if it rolled
//! back (the command was refused), the second claims the key itself and runs the command.
//! Only committed, successful outcomes are ever replayed.
//!
//! The record keeps the outcome the command layer serialised (`response_body`), never a
//! protocol's status: records written before that carry `response_status` 201 beside the
//! same body, which reads the same.

pub(crate) const CLAIM_ALL: &str = "
    INSERT INTO idempotency_keys (idempotency_key, request_fingerprint, stream_id)
    SELECT k, sha256(f), s FROM unnest($1::text[], $2::bytea[], $3::uuid[]) AS t (k, f, s)
    ON CONFLICT DO NOTHING
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
