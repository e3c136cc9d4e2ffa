-- name: CreateMachineAnnotation :one
-- A prediction for image $1 by machine user $2: no claim, and it does not count toward
-- annotations_per_image. No row when the image does not exist or the content does not fit: $8
-- (every label used) must be dataset labels, $9 and $10 (the right- and bottom-most coordinates)
-- inside the image when its size is known.
INSERT INTO annotations (image_id, dataset_id, source, author_id, model_name, model_version,
  confidence, labels, shapes)
SELECT i.id, i.dataset_id, 'machine', $2::bigint, $3::text, $4::text, $5::float8, $6::text[],
  $7::jsonb
FROM images i
JOIN datasets d ON d.id = i.dataset_id
WHERE i.id = $1::bigint
  AND $8::text[] <@ d.labels
  AND (i.width IS NULL OR $9::float8 <= i.width)
  AND (i.height IS NULL OR $10::float8 <= i.height)
RETURNING id::text, image_id::text, dataset_id::text, source, author_id::text,
  model_name, model_version, confidence, labels, shapes, created_at;
