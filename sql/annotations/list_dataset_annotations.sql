-- name: ListDatasetAnnotations :many
-- The changes feed of dataset :dataset_id, for the sources in :sources: annotations after the
-- cursor (:after_txid txid, :after_id id), oldest first, at most :limit. Each row also carries
-- `horizon` (below); when no annotation is due, one row comes back with only `horizon` set (the
-- annotation columns null). No rows at all when the dataset does not exist or caller :caller_id
-- (role :caller_role) may not see it (may_see_dataset, tested once in `dataset`).
--
-- A row's status changes (accepted, rejected, superseded: settle_human_annotations, the machine
-- create statements, amend_annotation.sql) move it to the changing transaction's txid, so
-- the feed delivers it again, after the cursor, with its new status: a client keeps the latest
-- version of each id, and sees every status change in commit order.
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
-- Keyset over annotations_dataset_source_txid_id_idx (dataset_id, source, txid, id), one scan per
-- source in :sources ('human', 'machine', or both): equality on the first two columns leaves
-- (txid, id) in index order, the row comparison and the horizon bound are index conditions, and
-- each scan stops after :limit rows, so a page costs its own size whatever the cursor, and a
-- `?source=human` poll reads no machine row however many a bulk prediction load put after its
-- cursor. Both sources read at most twice :limit rows and keep the first :limit. (One index for
-- both: an index on (dataset_id, txid, id) for all-source polls cost every annotation insert
-- one more index entry.) The horizon is computed once (MATERIALIZED) and passed into the
-- LATERAL scans. ORDER BY is qualified: a bare `txid, id` would sort by the text columns.
WITH horizon AS MATERIALIZED (
  SELECT feed_horizon() AS xmin
),
dataset AS MATERIALIZED (
  SELECT d.id
  FROM datasets d
  WHERE d.id = :dataset_id::bigint
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
)
SELECT h.xmin::text AS horizon, a.id::text, a.image_id::text, a.dataset_id::text, a.source,
  a.author_id::text, a.model_name, a.model_version, a.confidence, a.labels, a.shapes,
  a.created_at, a.status, a.reviewed_by::text, a.reviewed_at, a.review_comment, a.txid::text
FROM horizon h
CROSS JOIN dataset
LEFT JOIN LATERAL (
  SELECT per_source.id, per_source.image_id, per_source.dataset_id, per_source.source,
    per_source.author_id, per_source.model_name, per_source.model_version,
    per_source.confidence, per_source.labels, per_source.shapes, per_source.created_at,
    per_source.status, per_source.reviewed_by, per_source.reviewed_at, per_source.review_comment,
    per_source.txid
  FROM unnest(:sources::text[]) AS s (source)
  CROSS JOIN LATERAL (
    SELECT a.id, a.image_id, a.dataset_id, a.source, a.author_id, a.model_name,
      a.model_version, a.confidence, a.labels, a.shapes, a.created_at, a.status, a.reviewed_by,
      a.reviewed_at, a.review_comment, a.txid
    FROM annotations a
    WHERE a.dataset_id = :dataset_id::bigint
      AND a.source = s.source
      AND (a.txid, a.id) > (:after_txid::xid8, :after_id::bigint)
      AND a.txid < h.xmin
    ORDER BY a.txid, a.id
    LIMIT :limit::integer
  ) per_source
  ORDER BY per_source.txid, per_source.id
  LIMIT :limit::integer
) a ON true
ORDER BY a.txid, a.id;
