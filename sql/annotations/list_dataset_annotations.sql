-- name: ListDatasetAnnotations :many
-- The changes feed of dataset $1: annotations after the cursor ($3 txid, $4 id), oldest first,
-- at most $5; $2 'human' or 'machine' filters by source, null gives all.
--
-- A polling client must never miss a row. Ordering by id alone would: ids are drawn when a row is
-- inserted, not when it commits, so a transaction that inserted id 10 and commits after id 11 was
-- already delivered lands behind the client's cursor. Instead every row carries the id of the
-- transaction that wrote it (txid, assigned when the transaction first writes), the feed is
-- ordered by (txid, id), and a page only holds rows whose txid is below the xmin of this
-- statement's snapshot: every transaction with an xid below xmin has finished (committed or
-- aborted), so no row can appear later at or below a cursor handed out from such a page. Rows of
-- transactions still running, or younger than the oldest running one, wait for a later poll.
-- The price: a long-running writing transaction anywhere on the server holds back (never loses)
-- rows written after it began, until it ends.
--
-- Keyset over annotations_dataset_txid_id_idx (dataset_id, txid, id): the row comparison is an
-- index condition, so a page costs its own size whatever the cursor. ORDER BY is qualified: a bare
-- `txid, id` would sort by the text output columns.
SELECT a.id::text, a.image_id::text, a.dataset_id::text, a.source, a.author_id::text,
  a.model_name, a.model_version, a.confidence, a.labels, a.shapes, a.created_at, a.txid::text
FROM annotations a
WHERE a.dataset_id = $1::bigint
  AND (a.txid, a.id) > ($3::xid8, $4::bigint)
  AND a.txid < pg_snapshot_xmin(pg_current_snapshot())
  AND ($2::text IS NULL OR a.source = $2::text)
ORDER BY a.txid, a.id
LIMIT $5::integer;
