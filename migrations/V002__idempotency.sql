-- Idempotency records: the first response to a command sent with an Idempotency-Key,
-- written in the same transaction as the command's events, so a retry after a timeout
-- or a crash gets the same answer and appends nothing.
CREATE TABLE idempotency_keys (
    idempotency_key     text        PRIMARY KEY,
    -- sha256 of method, path and body: the same key with another request is refused.
    request_fingerprint bytea       NOT NULL,
    -- Filled in before the claiming transaction commits, so never seen empty by others:
    -- a concurrent request with the same key waits on the primary key until then.
    response_status     smallint,
    response_body       bytea,
    stream_id           uuid        NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
