-- An order's version as of a cut is its highest version inside the cut (positions rise with
-- versions within an order), which the primary key (order_id, stream_version) finds; the
-- index on (order_id, position) cost an insertion per event and a sort per rebuild for
-- nothing.
DROP INDEX payment_versions_by_order;
