-- migrate:up
-- The changes feed filtered by source (`?source=human`, sql/annotations/
-- list_dataset_annotations_by_source.sql): a keyset over (txid, id) within one dataset and one
-- source. On annotations_dataset_txid_id_idx alone, a human-only poll walked every machine row
-- after its cursor and threw them away, on every poll, long enough after a bulk prediction load
-- to hit the statement timeout. With source in the key a poll reads only the rows it returns.
--
-- Not CONCURRENTLY: migrations run while lib/migrate.ts holds an advisory lock that a second
-- migrator waits for inside a statement, and CREATE INDEX CONCURRENTLY waits for every older
-- snapshot, that waiting statement's included: two replicas starting together would hang. This
-- build blocks writes to annotations while it runs; on a large table, build the index by hand
-- first (the same statement with CONCURRENTLY, outside a transaction), and this one does nothing.
CREATE INDEX IF NOT EXISTS annotations_dataset_source_txid_id_idx
  ON annotations (dataset_id, source, txid, id);

-- migrate:down
DROP INDEX IF EXISTS annotations_dataset_source_txid_id_idx;
