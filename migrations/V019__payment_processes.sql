-- The payment service's saga state (the `payments` role, payment-service/src). One row per
-- order it charges or refunds; every change also lands in payment_process_revisions, in
-- the same transaction, so GET /v1/orders/{id}/payment-process answers as_of and
-- at_position like the read models.
CREATE TABLE payment_processes (
    order_id         uuid        PRIMARY KEY,
    -- payment-service/src/process.rs: step, attempts, the attempt in flight (with its
    -- provider idempotency key), refunds, the cause of the next command.
    state            jsonb       NOT NULL,
    step             text        NOT NULL,
    -- When the worker acts next; NULL: nothing to do.
    due_at           timestamptz,
    -- A worker's claim: until when it holds. A worker that died mid-step leaves it to
    -- lapse, and another takes the process over (repeating the step is safe: the keys are
    -- in `state`).
    lease_until      timestamptz,
    revision         integer     NOT NULL CHECK (revision > 0),
    through_position bigint      NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payment_processes_due ON payment_processes (due_at) WHERE due_at IS NOT NULL;

CREATE TABLE payment_process_revisions (
    order_id         uuid        NOT NULL,
    revision         integer     NOT NULL,
    state            jsonb       NOT NULL,
    through_position bigint      NOT NULL,
    changed_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (order_id, revision)
);

-- The events the saga has handled, by id: a redelivered event changes nothing. Written in
-- the same transaction as the state it changed.
CREATE TABLE payment_process_inbox (
    event_id    uuid        PRIMARY KEY,
    order_id    uuid        NOT NULL,
    position    bigint      NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
