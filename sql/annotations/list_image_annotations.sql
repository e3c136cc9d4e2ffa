-- name: ListImageAnnotations :many
-- Image :image_id's annotations in id order; :source 'human' or 'machine' filters by source, null
-- gives all; :statuses lists the statuses to return (the current ones, submitted and accepted,
-- unless the caller asks for history). None when caller :caller_id (role :caller_role) may not
-- see the image's dataset (may_see_dataset, tested on the image's one dataset row). ORDER BY names
-- a.id: a bare `id` would sort by the text output column.
SELECT a.id::text, a.image_id::text, a.dataset_id::text, a.source, a.author_id::text,
  a.model_name, a.model_version, a.confidence, a.labels, a.shapes, a.created_at, a.status,
  a.reviewed_by::text, a.reviewed_at, a.review_comment
FROM images i
JOIN datasets d ON d.id = i.dataset_id
JOIN annotations a ON a.image_id = i.id
WHERE i.id = :image_id::bigint
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
  AND (:source::text IS NULL OR a.source = :source::text)
  AND a.status = ANY (:statuses::text[])
ORDER BY a.id;
