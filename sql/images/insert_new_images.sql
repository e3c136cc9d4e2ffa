-- name: InsertNewImages :many
-- registerImages' fast path: a batch whose external_ids are all new to the dataset, none
-- repeated inside it (routes/images.ts passes each external_id's first occurrence only). A
-- plain INSERT, no ON CONFLICT: finding out per row whether its external_id is registered
-- (ON CONFLICT, or a NOT EXISTS probe) cost PostgreSQL about 50 ms more per 10,000 images than
-- letting the unique index refuse a repeat while it inserts (bench/experiments/register_sql.ts).
-- So when one external_id is already there (a re-sent batch, or a concurrent one committed
-- first) the whole statement fails on images_dataset_external_id_key (23505) and writes nothing,
-- and the caller sends the batch through register_images.sql instead.
--
-- Parameters as in register_images.sql: $1 the dataset, $2..$7 one JSON array per column, read
-- by the same `ds` and `input` CTEs (a change to one is made in both).
-- Answers the new ids in input order, drawn from the identity sequence up front (ids follow
-- input order); no rows at all when the dataset is gone. The dataset row is locked FOR SHARE
-- for the same reason as there: each image takes its annotations_per_image.
WITH ds AS MATERIALIZED (
  SELECT annotations_per_image AS k FROM datasets WHERE id = $1::bigint FOR SHARE
),
input AS MATERIALIZED (
  SELECT t.ord, nextval((SELECT pg_get_serial_sequence('images', 'id'))) AS new_id,
    t.external_id, t.uri, t.width::integer AS width, t.height::integer AS height,
    t.priority::float8 AS priority, t.metadata::jsonb AS metadata
  FROM ROWS FROM (
      json_array_elements_text($2::json), json_array_elements_text($3::json),
      json_array_elements_text($4::json), json_array_elements_text($5::json),
      json_array_elements_text($6::json), json_array_elements($7::json)
    ) WITH ORDINALITY AS t (external_id, uri, width, height, priority, metadata, ord)
),
inserted AS (
  INSERT INTO images (id, dataset_id, external_id, uri, width, height, priority, metadata,
    annotations_per_image)
  OVERRIDING SYSTEM VALUE
  SELECT new_id, $1::bigint, external_id, uri, width, height, coalesce(priority, 0),
    metadata, ds.k
  FROM input
  CROSS JOIN ds
)
SELECT input.new_id::text AS id
FROM input
CROSS JOIN ds
ORDER BY input.ord;
