-- name: UpdateDataset :one
-- Only the fields passed (non-null) change; :description_given says whether description was given,
-- so it can be cleared to null. Labels are append-only: the current list must be a prefix of the
-- new one (same labels, same order), because a label's position is its COCO category id in exports
-- (operations/exports.ts). Checked here against the row as locked, so two concurrent updates cannot
-- drop or move one. No row back means: no such dataset (or none caller :caller_id, role
-- :caller_role, may see: may_see_dataset), or the new labels are not the current ones with others
-- appended.
--
-- A new annotations_per_image (:annotations_per_image) must reach every image of the dataset in the
-- same transaction: sql/images/set_annotations_per_image.sql, run after this by updateDataset
-- (operations/datasets.ts). This statement's row lock on the dataset makes a concurrent
-- registerImages (which reads k FOR SHARE) wait until the images have it. A new :access of
-- 'members' ends the claims and review leases of those who no longer see the dataset, in the
-- same transaction (sql/leases/revoke_leases.sql).
WITH updated AS (
  UPDATE datasets
  SET description = CASE WHEN :description_given::boolean THEN :description::text
      ELSE description END,
    labels = coalesce(:labels::text[], labels),
    claim_ttl_seconds = coalesce(:claim_ttl_seconds::integer, claim_ttl_seconds),
    annotations_per_image = coalesce(:annotations_per_image::smallint, annotations_per_image),
    access = coalesce(:access::text, access),
    -- Applies to images completed from now on (a completed image is not re-selected).
    review_rate = coalesce(:review_rate::float8, review_rate)
  WHERE id = :id::bigint
    AND EXISTS (SELECT FROM may_see_dataset(id, access, :caller_id::bigint, :caller_role::text))
    AND (:labels::text[] IS NULL OR labels = (:labels::text[])[1:cardinality(labels)])
  RETURNING id, name, description, labels, annotations_per_image, claim_ttl_seconds, access,
    review_rate, created_at
)
SELECT id::text, name, description, labels, annotations_per_image, claim_ttl_seconds, access,
  review_rate, created_at
FROM updated;
