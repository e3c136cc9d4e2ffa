-- name: SetPriorities :one
-- Each input row names an image by id (:image_ids) or by external_id (:external_ids). Rows that
-- match nothing in the dataset are reported back by their position (1-based) in not_found. If an
-- image is named twice, the last row wins. Rows are locked in id order before the update so two
-- overlapping batches cannot deadlock each other.
WITH input AS (
  SELECT t.ord, t.image_id, t.external_id, t.priority
  FROM unnest(:image_ids::bigint[], :external_ids::text[], :priorities::float8[])
    WITH ORDINALITY AS t (image_id, external_id, priority, ord)
),
resolved AS MATERIALIZED (
  SELECT input.ord, input.priority, coalesce(by_id.id, by_ext.id) AS id
  FROM input
  LEFT JOIN images by_id ON input.image_id IS NOT NULL
    AND by_id.id = input.image_id AND by_id.dataset_id = :dataset_id::bigint
  LEFT JOIN images by_ext ON input.external_id IS NOT NULL
    AND by_ext.dataset_id = :dataset_id::bigint AND by_ext.external_id = input.external_id
),
latest AS (
  SELECT DISTINCT ON (id) id, priority
  FROM resolved
  WHERE id IS NOT NULL
  ORDER BY id, ord DESC
),
locked AS (
  SELECT i.id FROM images i JOIN latest USING (id) ORDER BY i.id FOR NO KEY UPDATE OF i
),
updated AS (
  UPDATE images
  SET priority = latest.priority
  FROM latest
  WHERE images.id = latest.id AND images.id IN (SELECT id FROM locked)
  RETURNING images.id
)
SELECT (SELECT count(*) FROM updated)::integer AS updated,
  coalesce((SELECT array_agg(ord ORDER BY ord) FROM resolved WHERE id IS NULL), '{}')::integer[]
    AS not_found;
