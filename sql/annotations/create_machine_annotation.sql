-- name: CreateMachineAnnotation :one
-- A prediction for image :image_id by machine user :author_id: no claim, and it does not count
-- toward annotations_per_image. No row when the image does not exist or the content does not fit:
-- :used_labels (every label used) must be dataset labels, :max_x and :max_y (the right- and
-- bottom-most coordinates) inside the image when its size is known.
INSERT INTO annotations (image_id, dataset_id, source, author_id, model_name, model_version,
  confidence, labels, shapes)
SELECT i.id, i.dataset_id, 'machine', :author_id::bigint, :model_name::text,
  :model_version::text, :confidence::float8, :labels::text[],
  :shapes::jsonb
FROM images i
JOIN datasets d ON d.id = i.dataset_id
WHERE i.id = :image_id::bigint
  AND :used_labels::text[] <@ d.labels
  AND (i.width IS NULL OR :max_x::float8 <= i.width)
  AND (i.height IS NULL OR :max_y::float8 <= i.height)
RETURNING id::text, image_id::text, dataset_id::text, source, author_id::text,
  model_name, model_version, confidence, labels, shapes, created_at;
