-- name: ListDatasetAnnotationsBySource :many
-- The changes feed of dataset :dataset_id for one source (:source 'human' or 'machine'):
-- annotations after the cursor (:after_txid txid, :after_id id), oldest first, at most :limit, each
-- with `horizon`; one row with only `horizon` when none is due. The rules (why txid, why below the
-- snapshot's xmin, how an empty page may move the cursor) are those of
-- list_dataset_annotations.sql.
--
-- A statement of its own, not `:source IS NULL OR source = :source` in the other: with that, a
-- generic plan cannot make source an index condition. Keyset over
-- annotations_dataset_source_txid_id_idx (dataset_id, source, txid, id): equality on the first two
-- columns leaves (txid, id) in index order, so a `?source=human` poll reads only human rows,
-- however many machine rows a bulk prediction load put after its cursor.
WITH horizon AS MATERIALIZED (
  SELECT feed_horizon() AS xmin
)
SELECT h.xmin::text AS horizon, a.id::text, a.image_id::text, a.dataset_id::text, a.source,
  a.author_id::text, a.model_name, a.model_version, a.confidence, a.labels, a.shapes,
  a.created_at, a.txid::text
FROM horizon h
LEFT JOIN LATERAL (
  SELECT a.id, a.image_id, a.dataset_id, a.source, a.author_id, a.model_name, a.model_version,
    a.confidence, a.labels, a.shapes, a.created_at, a.txid
  FROM annotations a
  WHERE a.dataset_id = :dataset_id::bigint
    AND a.source = :source::text
    AND (a.txid, a.id) > (:after_txid::xid8, :after_id::bigint)
    AND a.txid < h.xmin
  ORDER BY a.txid, a.id
  LIMIT :limit::integer
) a ON true
ORDER BY a.txid, a.id;
