-- Point-in-time read models. Every change of an order's payments is kept as a version,
-- valid from the event that made it to the event that replaced it, both as a position and
-- as an append time, so "as of" a cut is an indexed lookup, not a replay.
CREATE TABLE payment_versions (
    order_id         uuid        NOT NULL,
    stream_version   integer     NOT NULL,
    position         bigint      NOT NULL,
    recorded_at      timestamptz NOT NULL,
    -- The next version's event; NULL while this is the current version.
    next_position    bigint,
    next_recorded_at timestamptz,
    customer_id      text        NOT NULL,
    currency         text        NOT NULL,
    amount_due       bigint      NOT NULL,
    captured         bigint      NOT NULL,
    refunded         bigint      NOT NULL,
    cancelled        boolean     NOT NULL,
    outstanding      bigint      GENERATED ALWAYS AS (amount_due - captured) STORED,
    status           text        GENERATED ALWAYS AS (
        CASE
            WHEN cancelled THEN 'cancelled'
            WHEN refunded > 0 AND refunded = captured THEN 'refunded'
            WHEN refunded > 0 THEN 'partially_refunded'
            WHEN captured >= amount_due THEN 'paid'
            WHEN captured > 0 THEN 'partially_paid'
            ELSE 'awaiting_payment'
        END) STORED,
    placed_position  bigint      NOT NULL,
    PRIMARY KEY (order_id, stream_version)
);
CREATE INDEX payment_versions_by_order ON payment_versions (order_id, position);
CREATE INDEX payment_versions_by_placement ON payment_versions (placed_position, position);
CREATE INDEX payment_versions_by_customer ON payment_versions (customer_id, placed_position);

-- Attempts and notifications are facts that never change: as of a cut they are the ones
-- whose event is inside it.
ALTER TABLE payment_attempts ADD COLUMN position bigint;

-- How far each projection is complete: every event at or below `position`, and every event
-- appended at or before `complete_through`, is applied. As-of answers wait for it.
CREATE TABLE projection_watermarks (
    projection       text        PRIMARY KEY,
    position         bigint      NOT NULL DEFAULT 0,
    complete_through timestamptz NOT NULL DEFAULT '1970-01-01T00:00:00Z',
    updated_at       timestamptz NOT NULL DEFAULT now()
);
