-- name: UpdateDataset :one
-- Only the fields passed (non-null) change; $2 says whether description was given, so it can be
-- cleared to null. Labels are append-only: the current list must be a prefix of the new one
-- (same labels, same order), because a label's position is its COCO category id in exports
-- (routes/exports.ts). Checked here against the row as locked, so two concurrent updates cannot
-- drop or move one. No row back means: no such dataset, or the new labels are not the current
-- ones with others appended.
--
-- A new annotations_per_image ($6) recomputes `done` (cardinality(annotators) >= k) for the
-- dataset's images in the same statement, writing only the rows whose value changes: raising k
-- puts done images back in the claim queue, lowering it takes images out.
WITH updated AS (
  UPDATE datasets
  SET description = CASE WHEN $2::boolean THEN $3::text ELSE description END,
    labels = coalesce($4::text[], labels),
    claim_ttl_seconds = coalesce($5::integer, claim_ttl_seconds),
    annotations_per_image = coalesce($6::smallint, annotations_per_image)
  WHERE id = $1::bigint
    AND ($4::text[] IS NULL OR labels = ($4::text[])[1:cardinality(labels)])
  RETURNING id, name, description, labels, annotations_per_image, claim_ttl_seconds, created_at
),
recomputed AS (
  UPDATE images i
  SET done = cardinality(i.annotators) >= u.annotations_per_image
  FROM updated u
  WHERE $6::smallint IS NOT NULL
    AND i.dataset_id = u.id
    AND i.done <> (cardinality(i.annotators) >= u.annotations_per_image)
)
SELECT id::text, name, description, labels, annotations_per_image, claim_ttl_seconds, created_at
FROM updated;
