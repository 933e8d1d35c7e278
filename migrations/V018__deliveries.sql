-- Notification delivery (the `dispatcher` role, delivery/src). One row per notification
-- and channel. Like notification_deliveries, these rows are outside the tables a rebuild
-- of the notifications projection replaces, and are keyed by the notification's id
-- (derived from its event): a rebuild or a replay never creates a delivery again.
CREATE TABLE deliveries (
    notification_id uuid        NOT NULL,
    channel         text        NOT NULL CHECK (channel <> ''),
    order_id        uuid        NOT NULL,
    -- The notification's event: its position orders an order's messages, its time is
    -- where the delivery latency starts.
    position        bigint      NOT NULL,
    event_at        timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- While `sending`: until when the claim of `claimed_by` holds. A dispatcher that died
    -- mid-send leaves its claim to lapse, and another takes the message over.
    lease_until     timestamptz,
    claimed_by      text,
    delivered_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, channel)
);

-- What is due, oldest first; and per order, whether an earlier message is undelivered.
CREATE INDEX deliveries_due ON deliveries (position)
    WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_open_per_order ON deliveries (order_id, channel, position)
    WHERE status IN ('pending', 'sending');

-- Per channel: how far every notification has its delivery row (`enqueued_through`, a
-- position the notifications projection's watermark had reached, so nothing below it can
-- still appear), and the cut-over — notifications at or below it were history when the
-- channel was first enabled and are not sent.
CREATE TABLE delivery_cursors (
    channel          text        PRIMARY KEY,
    cutover          bigint      NOT NULL,
    enqueued_through bigint      NOT NULL,
    enabled_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (enqueued_through >= cutover)
);
