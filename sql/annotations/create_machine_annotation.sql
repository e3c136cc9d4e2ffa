-- name: CreateMachineAnnotation :one
-- A prediction for image $1 by machine user $2: no claim, and it does not count toward
-- annotations_per_image. No row when the image does not exist.
INSERT INTO annotations (image_id, dataset_id, source, author_id, model_name, model_version,
  confidence, labels, shapes)
SELECT i.id, i.dataset_id, 'machine', $2::bigint, $3::text, $4::text, $5::float8, $6::text[],
  $7::jsonb
FROM images i
WHERE i.id = $1::bigint
RETURNING id::text, image_id::text, dataset_id::text, source, author_id::text,
  model_name, model_version, confidence, labels, shapes, created_at;
