-- name: UpdateImage :one
-- Null means "leave as is" for both fields. status: as in get_image.sql.
UPDATE images i
SET priority = coalesce($2::float8, i.priority),
  metadata = coalesce($3::jsonb, i.metadata)
FROM datasets d
WHERE i.id = $1::bigint AND d.id = i.dataset_id
RETURNING i.id::text, i.dataset_id::text, i.external_id, i.uri, i.width, i.height, i.priority,
  i.metadata,
  CASE
    WHEN i.done THEN 'done'
    WHEN cardinality(i.annotators)
      + (SELECT count(*) FROM unnest(i.leases) l WHERE l.expires_at > now())
      >= d.annotations_per_image THEN 'in_progress'
    ELSE 'pending'
  END AS status,
  i.created_at;
