-- Whether a notification was delivered is not in the events, so it does not belong in the
-- tables a rebuild replaces: it was copied over row by row at every swap, a join of the
-- whole table while readers waited (1.3 s at 800 000 notifications). Kept here, keyed by
-- the notification's id (derived from its event, so the same in every generation), a
-- rebuild never touches it. No row means `pending`.
CREATE TABLE notification_deliveries (
    id         uuid        PRIMARY KEY,
    status     text        NOT NULL CHECK (status <> 'pending'),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO notification_deliveries (id, status)
SELECT id, status FROM notifications WHERE status <> 'pending';
ALTER TABLE notifications DROP COLUMN status;
