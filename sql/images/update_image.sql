-- name: UpdateImage :one
-- Null means "leave as is" for both fields. No row, and no change, when the image does not exist or
-- caller :caller_id (role :caller_role) may not see its dataset (may_see_dataset).
UPDATE images i
SET priority = coalesce(:priority::float8, i.priority),
  metadata = coalesce(:metadata::jsonb, i.metadata)
FROM datasets d
WHERE i.id = :id::bigint
  AND d.id = i.dataset_id
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
RETURNING i.id::text, i.dataset_id::text, i.external_id, i.uri, i.width, i.height, i.priority,
  i.metadata, image_status(i.done, i.full_until, i.review) AS status, i.created_at;
