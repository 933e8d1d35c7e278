-- The relay's checkpoint: the last event published, in the gap-safe (tx_id, position)
-- order. Only ever moves forward (see eventstore/src/relay.rs).
CREATE TABLE relay_checkpoints (
    name              text        PRIMARY KEY,
    tx_id             xid8        NOT NULL DEFAULT '0',
    global_position   bigint      NOT NULL DEFAULT 0,
    published_events  bigint      NOT NULL DEFAULT 0,
    last_published_at timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- A hint that new events exist, so an idle relay publishes within milliseconds instead of
-- at its next poll. Only a hint: a relay that misses it still finds the events by polling.
-- One notification per statement (and PostgreSQL folds duplicates within a transaction).
CREATE FUNCTION events_notify_appended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ledger_events_appended', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify_appended
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify_appended();
