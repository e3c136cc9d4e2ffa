-- name: RegisterImages :many
-- One statement for the whole batch (up to 10,000 rows). Each column comes as one JSON array
-- ($2..$7, element i of each is row i; $7 holds objects, {} where none was given), and ROWS FROM
-- reads the six side by side, cast to the columns' types here. Measured per 10,000 images
-- (bench/experiments/register_sql.ts): one JSON array of row objects read by json_to_recordset
-- cost PostgreSQL about 35 ms more (a hash table per object, metadata parsed twice to become
-- jsonb); typed arrays (unnest over text[], integer[], ...) cost it as little, but postgres.js
-- building their literals, every element escaped, cost the server 35 ms more than
-- JSON.stringify does for these arrays.
-- insert_new_images.sql (the fast path for new external_ids) reads its input with the same `ds`
-- and `input` CTEs: a change to how the batch is read is made in both.
--
-- Ids are drawn from the identity sequence up front so every input row knows the id it would
-- get, and rows come back in request order. A row whose external_id is already in the dataset is
-- skipped by ON CONFLICT and answered with the existing id: re-sending a batch creates nothing.
-- `dup` matches a repeat of an external_id inside this same batch to the row inserted for its
-- first occurrence (rows written by this statement are invisible to a read of images).
-- A skipped row's existing id is looked up by index, one scalar subquery per skipped row: a
-- LEFT JOIN of the input to the dataset's images was merge-joined by the planner (whose
-- statistics rarely know how big the dataset has grown), so every batch read and sorted every
-- image of the dataset and each batch cost more than the last (bench/experiments/register_sql.ts).
-- The sequence is named once (an InitPlan), not per row.
-- Each image takes the dataset's annotations_per_image, read with the dataset row locked FOR
-- SHARE: an updateDataset changing it (which rewrites it on every image) waits for this batch,
-- or this batch waits for it and reads the new value.
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
