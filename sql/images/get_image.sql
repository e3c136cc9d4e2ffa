-- name: GetImage :one
-- Image :id with its status (image_status: done, in_progress while every remaining slot is
-- leased, else pending).
SELECT i.id::text, i.dataset_id::text, i.external_id, i.uri, i.width, i.height, i.priority,
  i.metadata, image_status(i.done, i.full_until) AS status, i.created_at
FROM images i
WHERE i.id = :id::bigint;
