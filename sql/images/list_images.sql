-- name: ListImages :many
-- Keyset pagination on (dataset_id, id): stable while images are added, since new images get
-- larger ids. :after_id is the last id of the previous page (0 for the first page).
SELECT i.id::text, i.dataset_id::text, i.external_id, i.uri, i.width, i.height, i.priority,
  i.metadata, image_status(i.done, i.full_until) AS status, i.created_at
FROM images i
WHERE i.dataset_id = :dataset_id::bigint AND i.id > :after_id::bigint
ORDER BY i.id
LIMIT :limit::integer;
