-- name: GetAnnotationTarget :one
-- What an annotation of image :image_id is checked against before it is written: the image's size
-- (when known) and its dataset's label vocabulary. One primary-key lookup on each table. No row
-- when the image does not exist or caller :caller_id (role :caller_role) may not see its dataset
-- (may_see_dataset).
SELECT i.id::text, i.dataset_id::text, i.width, i.height, d.labels
FROM images i
JOIN datasets d ON d.id = i.dataset_id
WHERE i.id = :image_id::bigint
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text));
