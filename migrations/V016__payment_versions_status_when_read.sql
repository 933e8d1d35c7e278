-- A version's status and outstanding amount follow from its other columns; stored, they
-- were computed for every row a rebuild loads (a third of the time `COPY` took for a
-- million versions: 1.7 s against 1.15 s without them) and made every row 16 % wider for
-- the index builds, the vacuum and the WAL to carry. They are computed when read instead,
-- by `payment_status`, which the stored (because indexed) status of `payments` now calls
-- too, so that the rule is written once.
CREATE FUNCTION payment_status(amount_due bigint, captured bigint, refunded bigint, cancelled boolean)
    RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE
        WHEN cancelled THEN 'cancelled'
        WHEN refunded > 0 AND refunded = captured THEN 'refunded'
        WHEN refunded > 0 THEN 'partially_refunded'
        WHEN captured >= amount_due THEN 'paid'
        WHEN captured > 0 THEN 'partially_paid'
        ELSE 'awaiting_payment'
    END;

DROP INDEX payment_versions_by_customer;
ALTER TABLE payment_versions DROP COLUMN outstanding, DROP COLUMN status;
CREATE INDEX payment_versions_by_customer ON payment_versions (customer_id, placed_position)
    INCLUDE (position, next_position, recorded_at, next_recorded_at,
             currency, amount_due, captured, refunded, cancelled);

DROP INDEX payments_by_status;
ALTER TABLE payments DROP COLUMN status;
ALTER TABLE payments ADD COLUMN status text COLLATE "C"
    GENERATED ALWAYS AS (payment_status(amount_due, captured, refunded, cancelled)) STORED;
CREATE INDEX payments_by_status ON payments (status, placed_position);
