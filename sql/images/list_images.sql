-- name: ListImages :many
-- Keyset pagination on (dataset_id, id): stable while images are added, since new images get
-- larger ids. :after_id is the last id of the previous page (0 for the first page). None when
-- caller :caller_id (role :caller_role) may not see the dataset (may_see_dataset, an InitPlan).
SELECT i.id::text, i.dataset_id::text, i.external_id, i.uri, i.width, i.height, i.priority,
  i.metadata, image_status(i.done, i.full_until, i.review) AS status, i.created_at
FROM images i
WHERE i.dataset_id = :dataset_id::bigint AND i.id > :after_id::bigint
  AND EXISTS (
    SELECT FROM datasets d
    WHERE d.id = :dataset_id::bigint
      AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint,
        :caller_role::text))
  )
ORDER BY i.id
LIMIT :limit::integer;
