-- name: UpdateImage :one
-- Null means "leave as is" for both fields.
UPDATE images
SET priority = coalesce($2::float8, priority),
  metadata = coalesce($3::jsonb, metadata)
WHERE id = $1::bigint
RETURNING id::text, dataset_id::text, external_id, uri, width, height, priority, metadata,
  CASE WHEN done THEN 'done' ELSE 'pending' END AS status,
  created_at;
