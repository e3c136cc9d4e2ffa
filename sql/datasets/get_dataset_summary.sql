-- name: GetDatasetSummary :one
-- The dataset plus image_count, an index-only count over images_dataset_id_id_idx. Only for
-- getDataset: other routes use get_dataset, which does not count. No row when the dataset does
-- not exist or caller :caller_id (role :caller_role) may not see it (may_see_dataset).
SELECT d.id::text, d.name, d.description, d.labels, d.annotations_per_image, d.claim_ttl_seconds,
  d.access, d.review_rate, d.created_at,
  (SELECT count(*) FROM images i WHERE i.dataset_id = d.id)::integer AS image_count
FROM datasets d
WHERE d.id = :id::bigint
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text));
