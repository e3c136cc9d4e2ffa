-- name: FindImagesByExternalId :many
-- Resolves external ids that register_images could not see in its snapshot (a concurrent batch
-- registered them and committed while it ran).
SELECT id::text, external_id
FROM images
WHERE dataset_id = $1::bigint AND external_id = ANY ($2::text[]);
