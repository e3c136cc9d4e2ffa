-- name: RegisterImages :many
-- One statement for the whole batch (up to 10,000 rows), its rows from new_image_rows (which
-- also locks the dataset row and gives each its id and k). insert_new_images.sql is the fast path
-- for a batch of new external_ids; this one is taken when one of them is already registered.
--
-- Every input row knows the id it would get, and rows come back in request order. A row whose
-- external_id is already in the dataset is skipped by ON CONFLICT and answered with the existing
-- id: re-sending a batch creates nothing. `dup` matches a repeat of an external_id inside this
-- same batch to the row inserted for its first occurrence (rows written by this statement are
-- invisible to a read of images). A skipped row's existing id is looked up by index, one scalar
-- subquery per skipped row: a LEFT JOIN of the input to the dataset's images gets merge-joined by
-- a planner whose statistics do not know how big the dataset has grown, and then every batch
-- reads and sorts every image of the dataset (docs/decisions). No rows at all when the dataset
-- does not exist or caller :caller_id (role :caller_role) may not see it (new_image_rows then
-- gives none): not even the ids of images already registered.
WITH input AS MATERIALIZED (
  SELECT r.ord, r.id, r.external_id, r.uri, r.width, r.height, r.priority, r.metadata,
    r.annotations_per_image
  FROM new_image_rows(:dataset_id::bigint, :caller_id::bigint, :caller_role::text,
    :external_ids::json, :uris::json, :widths::json, :heights::json, :priorities::json,
    :metadata::json) r
),
inserted AS (
  INSERT INTO images (id, dataset_id, external_id, uri, width, height, priority, metadata,
    annotations_per_image)
  OVERRIDING SYSTEM VALUE
  SELECT id, :dataset_id::bigint, external_id, uri, width, height, coalesce(priority, 0),
    metadata, annotations_per_image
  FROM input
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
LEFT JOIN inserted ins ON ins.id = input.id
LEFT JOIN inserted dup ON ins.id IS NULL AND dup.external_id = input.external_id
ORDER BY input.ord;
