-- name: GetDataset :one
-- Dataset :id, or no row when it does not exist or caller :caller_id (role :caller_role) may not
-- see it (may_see_dataset): the two are one answer.
SELECT d.id::text, d.name, d.description, d.labels, d.annotations_per_image, d.claim_ttl_seconds,
  d.access, d.review_rate, d.created_at
FROM datasets d
WHERE d.id = :id::bigint
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text));
