-- name: ListDatasetAnnotations :many
-- The changes feed of dataset :dataset_id, every source: annotations after the cursor (:after_txid
-- txid, :after_id id), oldest first, at most :limit. Each row also carries `horizon` (below); when
-- no annotation is due, one row comes back with only `horizon` set (the annotation columns null).
-- list_dataset_annotations_by_source.sql is the same feed for one source.
--
-- A polling client must never miss a row. Ordering by id alone would: ids are drawn when a row is
-- inserted, not when it commits, so a transaction that inserted id 10 and commits after id 11 was
-- already delivered lands behind the client's cursor. Instead every row carries the id of the
-- transaction that wrote it (txid, assigned when the transaction first writes), the feed is
-- ordered by (txid, id), and a page only holds rows whose txid is below `horizon`: the oldest
-- transaction this statement's snapshot saw running (its xip list), or its xmax when none was,
-- so every transaction with an xid below it had finished (committed, and so visible to this
-- snapshot, or aborted) and no row can appear later at or below a cursor handed out from such a
-- page. Rows of transactions still running, or younger than the oldest running one, wait for a
-- later poll. Transactions pg_stat_activity shows still running in another database are left out
-- of that minimum: they cannot write this database's annotations, and a long one (another
-- application's, on a shared server; another test file's) would otherwise hold the feed back. A
-- transaction that ended before pg_stat_activity is read is not left out: unproven, it counts.
-- The price: a long-running writing transaction in this database holds back (never loses) rows
-- written after it began, until it ends.
--
-- `horizon` also lets an empty page move the cursor (listDatasetAnnotations in queries.ts): nothing
-- after the cursor and below horizon matched, and every row that can still commit has a txid >=
-- horizon (its transaction was running in this database, so its xid is >= horizon, or has no xid
-- yet and will get one >= xmax), so (horizon, 0) skips nothing (ids start at 1). Without that, an
-- empty poll would read the same non-matching rows again next time. It must come from this
-- statement's own snapshot: a later snapshot's horizon could pass rows this one did not see.
--
-- Keyset over annotations_dataset_txid_id_idx (dataset_id, txid, id): the row comparison and the
-- horizon bound are index conditions, so a page costs its own size whatever the cursor. The
-- horizon is computed once (MATERIALIZED) and passed into the LATERAL scan. The outer sort is of
-- at most :limit rows. ORDER BY is qualified: a bare `txid, id` would sort by the text columns.
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
    AND (a.txid, a.id) > (:after_txid::xid8, :after_id::bigint)
    AND a.txid < h.xmin
  ORDER BY a.txid, a.id
  LIMIT :limit::integer
) a ON true
ORDER BY a.txid, a.id;
