-- name: FindImageByExternalId :one
-- The image of dataset :dataset_id whose external_id (unique in a dataset) is :external_id, if its
-- id is greater than :after_id (listImages' cursor; 0 for none): one probe of
-- images_dataset_external_id_key, whose predicate (external_id IS NOT NULL) the strict `=` implies.
-- None when caller :caller_id (role :caller_role) may not see the dataset (may_see_dataset).
SELECT i.id::text, i.dataset_id::text, i.external_id, i.uri, i.width, i.height, i.priority,
  i.metadata, image_status(i.done, i.full_until, i.review) AS status, i.created_at
FROM images i
JOIN datasets d ON d.id = i.dataset_id
WHERE i.dataset_id = :dataset_id::bigint AND i.external_id = :external_id::text
  AND i.id > :after_id::bigint
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text));
