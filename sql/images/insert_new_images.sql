-- name: InsertNewImages :many
-- registerImages' fast path: a batch whose external_ids are all new to the dataset, none
-- repeated inside it (operations/images.ts passes each external_id's first occurrence only). A
-- plain INSERT, no ON CONFLICT: finding out per row whether its external_id is registered (ON
-- CONFLICT, or a NOT EXISTS probe) costs PostgreSQL about 50 ms more per 10,000 images than
-- letting the unique index refuse a repeat while it inserts (docs/decisions). So when one
-- external_id is already there (a re-sent batch, or a concurrent one committed first) the whole
-- statement fails on images_dataset_external_id_key (23505) and writes nothing, and the caller
-- sends the batch through register_images.sql instead.
--
-- Answers the new ids in input order, drawn from the identity sequence up front (ids follow input
-- order); no rows at all when the dataset is gone. The dataset row is locked FOR SHARE for the
-- same reason as in register_images.sql: each image takes its annotations_per_image.
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
)
SELECT input.new_id::text AS id
FROM input
CROSS JOIN dataset
ORDER BY input.ord;
