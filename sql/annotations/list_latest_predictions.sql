-- name: ListLatestPredictions :many
-- Image $1's latest machine annotation per model name (the highest id wins, whatever the
-- version), for pre-filling the editor; ordered by model name.
SELECT DISTINCT ON (a.model_name)
  a.id::text, a.image_id::text, a.dataset_id::text, a.source, a.author_id::text,
  a.model_name, a.model_version, a.confidence, a.labels, a.shapes, a.created_at
FROM annotations a
WHERE a.image_id = $1::bigint AND a.source = 'machine'
ORDER BY a.model_name, a.id DESC;
