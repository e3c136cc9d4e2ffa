-- migrate:up transaction:false
-- The changes feed filtered by source (`?source=human`, sql/annotations/
-- list_dataset_annotations_by_source.sql): a keyset over (txid, id) within one dataset and one
-- source. On annotations_dataset_txid_id_idx alone, a human-only poll walked every machine row
-- after its cursor and threw them away, on every poll, long enough after a bulk prediction load
-- to hit the statement timeout. With source in the key a poll reads only the rows it returns.
--
-- Built CONCURRENTLY, so outside a transaction and as the only statement of its file (a
-- multi-statement string is a transaction too): annotations takes writes all the time, and a
-- plain CREATE INDEX would block them for the whole build. If the build fails half-way it leaves
-- an INVALID index and the migration unrecorded; drop the index
-- (DROP INDEX CONCURRENTLY annotations_dataset_source_txid_id_idx) before migrating again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS annotations_dataset_source_txid_id_idx
  ON annotations (dataset_id, source, txid, id);

-- migrate:down transaction:false
DROP INDEX CONCURRENTLY IF EXISTS annotations_dataset_source_txid_id_idx;
