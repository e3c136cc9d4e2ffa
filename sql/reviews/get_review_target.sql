-- name: GetReviewTarget :one
-- What a refused review submit or amendment is judged against, read only on a refusal: image
-- :image_id's dataset labels and size, its review state and review lease, and whether user
-- :user_id is one of its annotators. None when there is no such image or the caller (role
-- :caller_role) may not see its dataset.
SELECT i.id::text, i.dataset_id::text, d.labels, i.width, i.height, i.review,
  (i.review_lease).claim_id::text AS review_lease_id,
  (i.review_lease).expires_at > now() AS review_lease_live,
  :user_id::bigint = ANY (i.annotators) AS is_annotator
FROM images i
JOIN datasets d ON d.id = i.dataset_id
WHERE i.id = :image_id::bigint
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :user_id::bigint, :caller_role::text));
