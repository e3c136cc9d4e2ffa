-- name: ListImages :many
-- Keyset pagination on (dataset_id, id): stable while images are added, since new images get
-- larger ids. $2 is the last id of the previous page (0 for the first page).
SELECT id::text, dataset_id::text, external_id, uri, width, height, priority, metadata,
  CASE WHEN done THEN 'done' ELSE 'pending' END AS status,
  created_at
FROM images
WHERE dataset_id = $1::bigint AND id > $2::bigint
ORDER BY id
LIMIT $3::integer;
