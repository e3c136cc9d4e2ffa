-- name: FindImageSizes :many
-- The known sizes of the images a batch of predictions names (by id or by external_id), so
-- shapes can be checked against them before anything is written.
SELECT i.id::text, i.external_id, i.width, i.height
FROM images i
WHERE i.dataset_id = $1::bigint
  AND (i.id = ANY ($2::bigint[]) OR i.external_id = ANY ($3::text[]))
  AND i.width IS NOT NULL AND i.height IS NOT NULL;
