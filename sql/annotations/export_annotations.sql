-- name: ExportAnnotations :many
-- Every image of dataset :dataset_id in id order, each with its annotations (id order) as a JSON
-- array; :source 'human' or 'machine' filters them by source, null gives all. Meant to be read
-- through a cursor (lib/db/query.ts `stream`): an index scan on images_dataset_id_id_idx with one
-- correlated lookup per image on annotations_image_id_id_idx and no sort or hash, so the server
-- produces rows as they are fetched and memory stays constant however big the dataset. Images
-- without (matching) annotations are included, with an empty array. No rows when caller
-- :caller_id (role :caller_role) may not see the dataset (may_see_dataset, an InitPlan: tested
-- once, before the scan).
SELECT i.id::text, i.dataset_id::text, i.external_id, i.uri, i.width, i.height, i.priority,
  i.metadata, image_status(i.done, i.full_until) AS status, i.created_at,
  coalesce((
    SELECT jsonb_agg(jsonb_build_object(
      'id', a.id::text, 'image_id', a.image_id::text, 'dataset_id', a.dataset_id::text,
      'source', a.source, 'author_id', a.author_id::text,
      'model_name', a.model_name, 'model_version', a.model_version,
      'confidence', a.confidence, 'labels', to_jsonb(a.labels), 'shapes', a.shapes,
      'created_at', a.created_at
    ) ORDER BY a.id)
    FROM annotations a
    WHERE a.image_id = i.id AND (:source::text IS NULL OR a.source = :source::text)
  ), '[]'::jsonb) AS annotations
FROM images i
WHERE i.dataset_id = :dataset_id::bigint
  AND EXISTS (
    SELECT FROM datasets d
    WHERE d.id = :dataset_id::bigint
      AND may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text)
  )
ORDER BY i.id;
