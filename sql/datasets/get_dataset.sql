-- name: GetDataset :one
SELECT id::text, name, description, labels, annotations_per_image, claim_ttl_seconds, created_at
FROM datasets
WHERE id = :id::bigint;
