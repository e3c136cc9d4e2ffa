-- name: ExportAnnotations :many
-- The images of dataset :dataset_id in id order, each with its annotations (id order) as a JSON
-- array; :source 'human' or 'machine' filters them by source, null gives all. Which images:
-- :images 'accepted' (a reviewer accepted or fixed them), 'labeled' (at least one current human
-- annotation: pending images are not exported as empty, which a trainer would read as negatives)
-- or 'all'. Which annotations: the current ones (submitted, accepted) unless :history, which adds
-- the rejected and superseded. No rows when caller :caller_id (role :caller_role) may not see the
-- dataset (may_see_dataset, an InitPlan: tested once, before the scan).
--
-- Meant to be read through a cursor (lib/db/query.ts `stream`): an index scan on
-- images_dataset_id_id_idx with one correlated lookup per image on annotations_image_id_id_idx
-- (which also tells whether it has a current human annotation) and no sort or hash, so the
-- server produces rows as they are fetched and memory stays constant however big the dataset.
SELECT i.id::text, i.dataset_id::text, i.external_id, i.uri, i.width, i.height, i.priority,
  i.metadata, image_status(i.done, i.full_until, i.review) AS status, i.created_at,
  coalesce(a.annotations, '[]'::jsonb) AS annotations
FROM images i
CROSS JOIN LATERAL (
  SELECT jsonb_agg(jsonb_build_object(
      'id', a.id::text, 'image_id', a.image_id::text, 'dataset_id', a.dataset_id::text,
      'source', a.source, 'author_id', a.author_id::text,
      'model_name', a.model_name, 'model_version', a.model_version,
      'confidence', a.confidence, 'labels', to_jsonb(a.labels), 'shapes', a.shapes,
      'created_at', a.created_at, 'status', a.status, 'reviewed_by', a.reviewed_by::text,
      'reviewed_at', a.reviewed_at, 'review_comment', a.review_comment
    ) ORDER BY a.id) FILTER (
      WHERE (:source::text IS NULL OR a.source = :source::text)
        AND (:history::boolean OR a.status IN ('submitted', 'accepted'))
    ) AS annotations,
    coalesce(bool_or(a.source = 'human' AND a.status IN ('submitted', 'accepted')), false)
      AS labeled
  FROM annotations a
  WHERE a.image_id = i.id
) a
WHERE i.dataset_id = :dataset_id::bigint
  AND EXISTS (
    SELECT FROM datasets d
    WHERE d.id = :dataset_id::bigint
      AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint,
        :caller_role::text))
  )
  AND (:images::text <> 'accepted' OR i.review = 'accepted')
  AND (:images::text <> 'labeled' OR a.labeled)
ORDER BY i.id;
