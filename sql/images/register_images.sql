-- name: RegisterImages :many
-- One statement for the whole batch (up to 10,000 rows), read by image_batch from one JSON array
-- per column (it says why). insert_new_images.sql is the fast path for a batch of new
-- external_ids; this one is taken when one of them is already registered.
--
-- Ids are drawn from the identity sequence up front so every input row knows the id it would
-- get, and rows come back in request order. A row whose external_id is already in the dataset is
-- skipped by ON CONFLICT and answered with the existing id: re-sending a batch creates nothing.
-- `dup` matches a repeat of an external_id inside this same batch to the row inserted for its
-- first occurrence (rows written by this statement are invisible to a read of images).
-- A skipped row's existing id is looked up by index, one scalar subquery per skipped row: a LEFT
-- JOIN of the input to the dataset's images gets merge-joined by a planner whose statistics do
-- not know how big the dataset has grown, and then every batch reads and sorts every image of
-- the dataset (docs/decisions). The sequence is named once (an InitPlan), not per row.
-- Each image takes the dataset's annotations_per_image, read with the dataset row locked FOR
-- SHARE: an updateDataset changing it (which rewrites it on every image) waits for this batch,
-- or this batch waits for it and reads the new value.
WITH dataset AS MATERIALIZED (
  SELECT annotations_per_image AS k FROM datasets WHERE id = :dataset_id::bigint FOR SHARE
),
input AS MATERIALIZED (
  SELECT b.ord, b.external_id, b.uri, b.width, b.height, b.priority, b.metadata,
    nextval((SELECT pg_get_serial_sequence('images', 'id'))) AS new_id
  FROM image_batch(:external_ids::json, :uris::json, :widths::json, :heights::json,
    :priorities::json, :metadata::json) b
),
inserted AS (
  INSERT INTO images (id, dataset_id, external_id, uri, width, height, priority, metadata,
    annotations_per_image)
  OVERRIDING SYSTEM VALUE
  SELECT new_id, :dataset_id::bigint, external_id, uri, width, height, coalesce(priority, 0),
    metadata, dataset.k
  FROM input
  CROSS JOIN dataset
  ORDER BY ord
  ON CONFLICT (dataset_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
  RETURNING id, external_id
)
SELECT coalesce(ins.id, dup.id, (
    SELECT existing.id
    FROM images existing
    WHERE existing.dataset_id = :dataset_id::bigint AND existing.external_id = input.external_id
  ))::text AS id,
  input.external_id,
  ins.id IS NOT NULL AS created
FROM input
LEFT JOIN inserted ins ON ins.id = input.new_id
LEFT JOIN inserted dup ON ins.id IS NULL AND dup.external_id = input.external_id
ORDER BY input.ord;
