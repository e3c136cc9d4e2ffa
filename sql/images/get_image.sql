-- name: GetImage :one
-- Image :id with its status (image_status: accepted, in_review, done, in_progress while every
-- remaining slot is leased, else pending). No row when it does not exist or caller :caller_id
-- (role :caller_role) may not see its dataset (may_see_dataset).
SELECT i.id::text, i.dataset_id::text, i.external_id, i.uri, i.width, i.height, i.priority,
  i.metadata, image_status(i.done, i.full_until, i.review) AS status, i.created_at
FROM images i
JOIN datasets d ON d.id = i.dataset_id
WHERE i.id = :id::bigint
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text));
