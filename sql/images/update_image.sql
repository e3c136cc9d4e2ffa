-- name: UpdateImage :one
-- Null means "leave as is" for both fields.
UPDATE images i
SET priority = coalesce(:priority::float8, i.priority),
  metadata = coalesce(:metadata::jsonb, i.metadata)
WHERE i.id = :id::bigint
RETURNING i.id::text, i.dataset_id::text, i.external_id, i.uri, i.width, i.height, i.priority,
  i.metadata, image_status(i.done, i.full_until) AS status, i.created_at;
