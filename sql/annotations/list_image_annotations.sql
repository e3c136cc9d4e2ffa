-- name: ListImageAnnotations :many
-- Image $1's annotations in id order; $2 'human' or 'machine' filters by source, null gives all.
-- ORDER BY names a.id: a bare `id` would sort by the text output column.
SELECT a.id::text, a.image_id::text, a.dataset_id::text, a.source, a.author_id::text,
  a.model_name, a.model_version, a.confidence, a.labels, a.shapes, a.created_at
FROM annotations a
WHERE a.image_id = $1::bigint AND ($2::text IS NULL OR a.source = $2::text)
ORDER BY a.id;
