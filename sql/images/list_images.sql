-- name: ListImages :many
-- Keyset pagination on (dataset_id, id): stable while images are added, since new images get
-- larger ids. $2 is the last id of the previous page (0 for the first page).
-- status: as in get_image.sql.
SELECT id::text, dataset_id::text, external_id, uri, width, height, priority, metadata,
  CASE
    WHEN done THEN 'done'
    WHEN cardinality(annotators)
      + (SELECT count(*) FROM unnest(leases) l WHERE l.expires_at > now())
      >= (SELECT annotations_per_image FROM datasets WHERE id = $1::bigint) THEN 'in_progress'
    ELSE 'pending'
  END AS status,
  created_at
FROM images
WHERE dataset_id = $1::bigint AND id > $2::bigint
ORDER BY images.id
LIMIT $3::integer;
