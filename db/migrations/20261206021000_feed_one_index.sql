-- migrate:up
-- The changes feed reads annotations_dataset_source_txid_id_idx for every poll, one scan per
-- source (sql/annotations/list_dataset_annotations.sql), so (dataset_id, txid, id) serves no
-- statement, and every annotation insert paid for its entry.
DROP INDEX IF EXISTS annotations_dataset_txid_id_idx;

-- migrate:down
CREATE INDEX IF NOT EXISTS annotations_dataset_txid_id_idx ON annotations (dataset_id, txid, id);
