-- name: GetImage :one
-- status: 'done' (the dataset's annotations_per_image human annotations), 'in_progress' (not
-- done, and every remaining slot is under a live lease), else 'pending'. Leases and annotators
-- live on the image row: see sql/claims/claim_next_image.sql.
SELECT i.id::text, i.dataset_id::text, i.external_id, i.uri, i.width, i.height, i.priority,
  i.metadata,
  CASE
    WHEN i.done THEN 'done'
    WHEN cardinality(i.annotators)
      + (SELECT count(*) FROM unnest(i.leases) l WHERE l.expires_at > now())
      >= d.annotations_per_image THEN 'in_progress'
    ELSE 'pending'
  END AS status,
  i.created_at
FROM images i
JOIN datasets d ON d.id = i.dataset_id
WHERE i.id = $1::bigint;
