-- name: SetPriorities :one
-- Each input row names an image by id (:image_ids) or by external_id (:external_ids), resolved by
-- named_images. Rows that match nothing in the dataset are reported back by their position
-- (1-based) in not_found. If an image is named twice, the last row wins. Rows are locked in id
-- order before the update so two overlapping batches cannot deadlock each other.
WITH resolved AS MATERIALIZED (
  SELECT n.ord, n.id, p.priority
  FROM named_images(:dataset_id::bigint, :image_ids::bigint[], :external_ids::text[]) n
  JOIN unnest(:priorities::float8[]) WITH ORDINALITY AS p (priority, ord) ON p.ord = n.ord
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
