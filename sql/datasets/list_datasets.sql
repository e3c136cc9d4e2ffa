-- name: ListDatasets :many
-- The datasets caller :caller_id (role :caller_role) may see (may_see_dataset), oldest first.
-- The rule is tested per dataset: at most one primary-key lookup each on dataset_members.
SELECT d.id::text, d.name, d.description, d.labels, d.annotations_per_image, d.claim_ttl_seconds,
  d.access, d.review_rate, d.created_at
FROM datasets d
WHERE EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
ORDER BY d.id;
