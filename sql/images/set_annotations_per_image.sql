-- name: SetAnnotationsPerImage :execrows
-- Gives every image of dataset :dataset_id the dataset's new annotations_per_image
-- :annotations_per_image (k), with `done` (cardinality(annotators) >= k) and full_until recomputed:
-- raising k puts done images back in the claim queue, lowering it takes images out. Runs in
-- updateDataset's transaction, after the dataset row (sql/datasets/update_dataset.sql). It locks
-- each image row it rewrites, so a claim or submit on that image either finished before (and this
-- sees its write, re-reading the row) or waits and then sees the new k on the row it locks.
-- Nothing changes when caller :caller_id (role :caller_role) may not see the dataset
-- (may_see_dataset, an InitPlan).
UPDATE images i
SET annotations_per_image = :annotations_per_image::smallint,
  done = cardinality(i.annotators) >= :annotations_per_image::smallint,
  full_until = CASE WHEN cardinality(i.annotators) < :annotations_per_image::smallint
    THEN lease_full_until(cardinality(i.annotators), live_leases(i.leases, NULL),
      :annotations_per_image::smallint)
  END
WHERE i.dataset_id = :dataset_id::bigint
  AND i.annotations_per_image <> :annotations_per_image::smallint
  AND EXISTS (
    SELECT FROM datasets d
    WHERE d.id = :dataset_id::bigint
      AND may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text)
  );
