-- name: RegisterImages :many
-- A proposed sql/images/register_images.sql (compared by bench/experiments/register_sql.ts):
-- the same answer, but a skipped row's existing id is looked up by index, one scalar subquery
-- per skipped row, instead of a LEFT JOIN of the input to the dataset's images. The planner
-- (whose statistics rarely know how big the dataset has grown) merge-joined that join: every
-- batch read and sorted every image of the dataset, so each batch cost more than the last.
-- The identity sequence is also named once (an InitPlan), not per row.
WITH input AS MATERIALIZED (
  SELECT t.ord, nextval((SELECT pg_get_serial_sequence('images', 'id'))) AS new_id,
    t.external_id, t.uri, t.width, t.height, t.priority, t.metadata
  FROM unnest($2::text[], $3::text[], $4::integer[], $5::integer[], $6::float8[], $7::jsonb[])
    WITH ORDINALITY AS t (external_id, uri, width, height, priority, metadata, ord)
),
inserted AS (
  INSERT INTO images (id, dataset_id, external_id, uri, width, height, priority, metadata)
  OVERRIDING SYSTEM VALUE
  SELECT new_id, $1::bigint, external_id, uri, width, height, coalesce(priority, 0),
    coalesce(metadata, '{}'::jsonb)
  FROM input
  ORDER BY ord
  ON CONFLICT (dataset_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
  RETURNING id, external_id
)
SELECT coalesce(ins.id, dup.id, (
    SELECT existing.id
    FROM images existing
    WHERE existing.dataset_id = $1::bigint AND existing.external_id = input.external_id
  ))::text AS id,
  input.external_id,
  ins.id IS NOT NULL AS created
FROM input
LEFT JOIN inserted ins ON ins.id = input.new_id
LEFT JOIN inserted dup ON ins.id IS NULL AND dup.external_id = input.external_id
ORDER BY input.ord;
