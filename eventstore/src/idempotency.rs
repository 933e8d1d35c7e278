//! Idempotency records: SQL for claiming a key and recording the response to replay.
//!
//! The claim is an `INSERT … ON CONFLICT DO NOTHING` inside the command's transaction.
//! A concurrent request with the same key blocks on the primary key until the first
//! transaction ends: if it committed, the second finds its stored response; if it rolled
//! back (the command was refused), the second claims the key itself and runs the command.
//! Only committed, successful responses are ever replayed.

pub(crate) const CLAIM: &str = "
    INSERT INTO idempotency_keys (idempotency_key, request_fingerprint, stream_id)
    VALUES ($1, sha256($2), $3)
    ON CONFLICT DO NOTHING
    RETURNING true";

pub(crate) const LOOKUP: &str = "
    SELECT request_fingerprint = sha256($2), response_status, response_body
      FROM idempotency_keys
     WHERE idempotency_key = $1";

pub(crate) const RECORD_RESPONSE: &str = "
    UPDATE idempotency_keys
       SET response_status = $2, response_body = $3
     WHERE idempotency_key = $1";

/// The outcome of claiming an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use of the key: run the command and record its response.
    Claimed,
    /// The key was used before with the same request: answer with its stored response.
    Replay { status: u16, body: Vec<u8> },
    /// The key was used before with a different request.
    Mismatch,
}
