-- Identifiers and codes that lead an index compare byte by byte. Under the database's
-- linguistic collation every comparison went through the C library's locale machinery, and
-- a rebuild spent most of its index sorting there (the covering index on customers sorted
-- 1M rows in 3.2 s, 2.0 s in byte order). Equality, the only comparison the queries make on
-- these columns, is the same in both collations, and a column's own collation beats a
-- parameter's default one, so the queries keep using the indexes.
ALTER TABLE payment_versions ALTER COLUMN customer_id TYPE text COLLATE "C";
ALTER TABLE payments ALTER COLUMN customer_id TYPE text COLLATE "C",
                     ALTER COLUMN status TYPE text COLLATE "C";
ALTER TABLE notifications ALTER COLUMN customer_id TYPE text COLLATE "C";
