-- name: ListDatasetAnnotationsBySource :many
-- The changes feed of dataset $1 for one source ($2 'human' or 'machine'): annotations after the
-- cursor ($3 txid, $4 id), oldest first, at most $5, each with `horizon`; one row with only
-- `horizon` when none is due. The rules (why txid, why below the snapshot's xmin, how an empty
-- page may move the cursor) are those of list_dataset_annotations.sql.
--
-- A statement of its own, not `$2 IS NULL OR source = $2` in the other: with that, a generic plan
-- cannot make source an index condition. Keyset over annotations_dataset_source_txid_id_idx
-- (dataset_id, source, txid, id): equality on the first two columns leaves (txid, id) in index
-- order, so a `?source=human` poll reads only human rows, however many machine rows a bulk
-- prediction load put after its cursor.
WITH snapshot AS MATERIALIZED (
  SELECT pg_current_snapshot() AS s
),
horizon AS MATERIALIZED (
  SELECT coalesce(
    (
      SELECT min(x)
      FROM pg_snapshot_xip((SELECT s FROM snapshot)) x
      WHERE NOT EXISTS (
        SELECT FROM pg_stat_activity p
        WHERE p.datname <> current_database()
          AND p.backend_xid::text::bigint = x::text::bigint % 4294967296
      )
    ),
    pg_snapshot_xmax((SELECT s FROM snapshot))
  ) AS xmin
)
SELECT h.xmin::text AS horizon, a.id::text, a.image_id::text, a.dataset_id::text, a.source,
  a.author_id::text, a.model_name, a.model_version, a.confidence, a.labels, a.shapes,
  a.created_at, a.txid::text
FROM horizon h
LEFT JOIN LATERAL (
  SELECT a.id, a.image_id, a.dataset_id, a.source, a.author_id, a.model_name, a.model_version,
    a.confidence, a.labels, a.shapes, a.created_at, a.txid
  FROM annotations a
  WHERE a.dataset_id = $1::bigint
    AND a.source = $2::text
    AND (a.txid, a.id) > ($3::xid8, $4::bigint)
    AND a.txid < h.xmin
  ORDER BY a.txid, a.id
  LIMIT $5::integer
) a ON true
ORDER BY a.txid, a.id;
