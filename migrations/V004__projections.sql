-- Read models and the state that makes their updates exactly-once.

-- Per projection and order, the last stream version applied. An event is applied only if
-- it is the next version; an older one is a duplicate; a newer one means versions were
-- missed, which are read from the event store first (the read model heals itself).
-- Updated in the same transaction as the read model.
CREATE TABLE projection_streams (
    projection     text    NOT NULL,
    stream_id      uuid    NOT NULL,
    stream_version integer NOT NULL,
    PRIMARY KEY (projection, stream_id)
);

-- Progress of each projection, for status pages and lag.
CREATE TABLE projection_status (
    projection       text        PRIMARY KEY,
    applied_events   bigint      NOT NULL DEFAULT 0,
    last_position    bigint,
    last_applied_at  timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Payments read model: one row per order.
CREATE TABLE payments (
    order_id        uuid        PRIMARY KEY,
    customer_id     text        NOT NULL,
    currency        text        NOT NULL,
    amount_due      bigint      NOT NULL,
    captured        bigint      NOT NULL DEFAULT 0,
    refunded        bigint      NOT NULL DEFAULT 0,
    cancelled       boolean     NOT NULL DEFAULT false,
    outstanding     bigint      GENERATED ALWAYS AS (amount_due - captured) STORED,
    status          text        GENERATED ALWAYS AS (
        CASE
            WHEN cancelled THEN 'cancelled'
            WHEN refunded > 0 AND refunded = captured THEN 'refunded'
            WHEN refunded > 0 THEN 'partially_refunded'
            WHEN captured >= amount_due THEN 'paid'
            WHEN captured > 0 THEN 'partially_paid'
            ELSE 'awaiting_payment'
        END) STORED,
    placed_position bigint      NOT NULL,
    stream_version  integer     NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX payments_by_customer ON payments (customer_id, placed_position);
CREATE INDEX payments_by_status ON payments (status, placed_position);
CREATE INDEX payments_by_position ON payments (placed_position);

-- Every payment attempt of an order, with its outcome.
CREATE TABLE payment_attempts (
    order_id       uuid        NOT NULL REFERENCES payments (order_id),
    stream_version integer     NOT NULL,
    payment_id     text        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('captured', 'failed', 'refunded')),
    amount         bigint      NOT NULL,
    method         text,
    reason         text,
    refund_id      text,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (order_id, stream_version)
);

-- Notifications read model: one per event worth telling the customer. The id derives
-- from the event, so a replay never creates a second one.
CREATE TABLE notifications (
    id          uuid        PRIMARY KEY,
    order_id    uuid        NOT NULL,
    customer_id text        NOT NULL,
    template    text        NOT NULL,
    recipient   text        NOT NULL,
    subject     text        NOT NULL,
    body        text        NOT NULL,
    status      text        NOT NULL DEFAULT 'pending',
    position    bigint      NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX notifications_by_customer ON notifications (customer_id, position);
CREATE INDEX notifications_by_order ON notifications (order_id, position);
CREATE INDEX notifications_by_position ON notifications (position);

-- Messages a projection could not process after its retries, parked with the error.
CREATE TABLE dead_letters (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection   text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    key          text,
    payload      bytea,
    error        text        NOT NULL,
    attempts     integer     NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    redriven_at  timestamptz
);

-- What the notifications projection remembers of each order to address later messages
-- (only OrderPlaced carries the customer's email).
CREATE TABLE notification_orders (
    order_id    uuid PRIMARY KEY,
    customer_id text NOT NULL,
    recipient   text NOT NULL
);
