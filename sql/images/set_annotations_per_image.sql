-- name: SetAnnotationsPerImage :execrows
-- Gives every image of dataset :dataset_id the dataset's new annotations_per_image
-- :annotations_per_image (k), with `done` (cardinality(annotators) >= k) and full_until recomputed:
-- raising k puts done images back in the claim queue, lowering it takes images out. Runs in
-- updateDataset's transaction, after the dataset row (sql/datasets/update_dataset.sql). It locks
-- each image row it rewrites, so a claim or submit on that image either finished before (and this
-- sees its write, re-reading the row) or waits and then sees the new k on the row it locks.
-- Nothing changes when caller :caller_id (role :caller_role) may not see the dataset
-- (may_see_dataset, tested on the one dataset row joined).
--
-- Review follows done: an image that goes back to the claim queue leaves the review queue (its
-- review lease is dropped: that reviewer's submit is refused as for a lease taken over), and one
-- that lowering k completes goes to review as a completing submit would send it
-- (review_selected). An accepted image stays accepted, and out of the claim queue, whatever k
-- becomes.
UPDATE images i
SET annotations_per_image = :annotations_per_image::smallint,
  done = i.review IS NOT DISTINCT FROM 'accepted'
    OR cardinality(i.annotators) >= :annotations_per_image::smallint,
  full_until = CASE WHEN i.review IS DISTINCT FROM 'accepted'
      AND cardinality(i.annotators) < :annotations_per_image::smallint
    THEN lease_full_until(cardinality(i.annotators), live_leases(i.leases, NULL),
      :annotations_per_image::smallint)
  END,
  review = CASE
    WHEN i.review = 'accepted' THEN 'accepted'
    WHEN cardinality(i.annotators) < :annotations_per_image::smallint THEN NULL
    WHEN NOT i.done AND review_selected(i.dataset_id, i.id, d.review_rate) THEN 'waiting'
    ELSE i.review
  END,
  review_since = CASE
    WHEN i.review = 'accepted' THEN NULL
    WHEN cardinality(i.annotators) < :annotations_per_image::smallint THEN NULL
    WHEN NOT i.done AND review_selected(i.dataset_id, i.id, d.review_rate) THEN now()
    ELSE i.review_since
  END,
  review_lease = CASE WHEN i.review IS DISTINCT FROM 'accepted'
      AND cardinality(i.annotators) < :annotations_per_image::smallint
    THEN NULL ELSE i.review_lease END
FROM datasets d
WHERE d.id = :dataset_id::bigint
  AND i.dataset_id = :dataset_id::bigint
  AND i.annotations_per_image <> :annotations_per_image::smallint
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text));
