-- name: GetAnnotation :one
-- Annotation :id, for diagnosing a refused amendment. None when it does not exist or the caller
-- :caller_id (role :caller_role) may not see its dataset.
SELECT a.id::text, a.image_id::text, a.dataset_id::text, a.source, a.author_id::text,
  a.model_name, a.model_version, a.confidence, a.labels, a.shapes, a.created_at, a.status,
  a.reviewed_by::text, a.reviewed_at, a.review_comment
FROM annotations a
JOIN datasets d ON d.id = a.dataset_id
WHERE a.id = :id::bigint
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text));
