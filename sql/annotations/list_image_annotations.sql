-- name: ListImageAnnotations :many
-- Image :image_id's annotations in id order; :source 'human' or 'machine' filters by source, null
-- gives all. ORDER BY names a.id: a bare `id` would sort by the text output column.
SELECT a.id::text, a.image_id::text, a.dataset_id::text, a.source, a.author_id::text,
  a.model_name, a.model_version, a.confidence, a.labels, a.shapes, a.created_at
FROM annotations a
WHERE a.image_id = :image_id::bigint AND (:source::text IS NULL OR a.source = :source::text)
ORDER BY a.id;
