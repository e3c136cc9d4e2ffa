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
-- Answers the new ids in input order: new_image_rows draws them in that order. No rows at all
-- when the dataset is gone, or caller :caller_id (role :caller_role) may not see it
-- (new_image_rows then gives none).
WITH inserted AS (
  INSERT INTO images (id, dataset_id, external_id, uri, width, height, priority, metadata,
    annotations_per_image)
  OVERRIDING SYSTEM VALUE
  SELECT r.id, :dataset_id::bigint, r.external_id, r.uri, r.width, r.height,
    coalesce(r.priority, 0), r.metadata, r.annotations_per_image
  FROM new_image_rows(:dataset_id::bigint, :caller_id::bigint, :caller_role::text,
    :external_ids::json, :uris::json, :widths::json, :heights::json, :priorities::json,
    :metadata::json) r
  RETURNING images.id
)
SELECT id::text AS id
FROM inserted
ORDER BY inserted.id;
