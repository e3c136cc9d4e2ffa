-- name: GetImage :one
SELECT id::text, dataset_id::text, external_id, uri, width, height, priority, metadata,
  CASE WHEN done THEN 'done' ELSE 'pending' END AS status,
  created_at
FROM images
WHERE id = $1::bigint;
