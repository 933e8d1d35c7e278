-- A customer's balance as of a cut sums one version per order; with every column it reads
-- in the index, that is an index-only scan of one customer's range instead of a table
-- fetch per version (a customer with 200 orders has about 1 000 versions). Queries also
-- bound `placed_position` by the cut, so the range ends at the cut.
DROP INDEX payment_versions_by_customer;
CREATE INDEX payment_versions_by_customer ON payment_versions (customer_id, placed_position)
    INCLUDE (position, next_position, recorded_at, next_recorded_at,
             currency, amount_due, captured, refunded, outstanding, cancelled);
