-- name: SetPriorities :one
-- Each input row names an image by id (:image_ids) or by external_id (:external_ids), resolved by
-- named_images. Rows that match nothing in the dataset are reported back by their position
-- (1-based) in not_found. If an image is named twice, the last row wins. Rows are locked in id
-- order before the update so two overlapping batches cannot deadlock each other. No row at all
-- when the dataset does not exist or caller :caller_id (role :caller_role) may not see it
-- (may_see_dataset, tested once in `dataset`): nothing is changed then.
WITH dataset AS MATERIALIZED (
  SELECT d.id
  FROM datasets d
  WHERE d.id = :dataset_id::bigint
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
),
resolved AS MATERIALIZED (
  -- Each row's priority by its position: a join on ordinality was estimated at 50 times the
  -- batch, which took the plan past jit_above_cost where PostgreSQL has JIT (Debian's does):
  -- about 2.5 % of a 10,000-row batch (bench/experiments/priorities_sql.ts, tuned setup).
  SELECT n.ord, n.id, (:priorities::float8[])[n.ord] AS priority
  FROM named_images(:dataset_id::bigint, :image_ids::bigint[], :external_ids::text[]) n
  WHERE EXISTS (SELECT FROM dataset)
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
    AS not_found
FROM dataset;
