-- migrate:up
-- new_image_rows takes the caller and applies the membership rule itself, so the two
-- registerImages statements (insert_new_images.sql, register_images.sql) no longer each carry the
-- same `dataset` and `input` CTEs around it: one definition of "the rows a caller may register".

-- A registerImages batch as the rows to insert, in input order: element i of each JSON array is
-- row i (metadata holds objects), cast to the columns' types, with the id each row would get
-- (drawn from the identity sequence in input order, so id order is input order) and the dataset's
-- annotations_per_image, read with the dataset row locked FOR SHARE: an updateDataset changing k
-- (which rewrites it on every image) waits for the batch, or the batch waits for it and reads the
-- new value. No rows when the dataset does not exist or caller `caller_id` (role `caller_role`)
-- may not see it (may_see_dataset, a filter below the row lock: a dataset the caller may not see
-- is not even locked). One JSON array per column: postgres.js serialises it faster than typed
-- arrays, and PostgreSQL reads it faster than an array of row objects (docs/decisions). Read by
-- register_images.sql and insert_new_images.sql.
CREATE FUNCTION new_image_rows(dataset_id bigint, caller_id bigint, caller_role text,
  external_ids json, uris json, widths json, heights json, priorities json,
  metadata_objects json)
RETURNS TABLE (ord bigint, id bigint, external_id text, uri text, width integer,
  height integer, priority float8, metadata jsonb, annotations_per_image smallint)
LANGUAGE sql VOLATILE
AS $$
  WITH dataset AS MATERIALIZED (
    SELECT d.annotations_per_image
    FROM datasets d
    WHERE d.id = new_image_rows.dataset_id
      AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, caller_id, caller_role))
    FOR SHARE OF d
  )
  SELECT t.ord, nextval((SELECT pg_get_serial_sequence('images', 'id'))), t.external_id, t.uri,
    t.width::integer, t.height::integer, t.priority::float8, t.metadata::jsonb,
    d.annotations_per_image
  FROM dataset d
  CROSS JOIN ROWS FROM (
      json_array_elements_text(external_ids), json_array_elements_text(uris),
      json_array_elements_text(widths), json_array_elements_text(heights),
      json_array_elements_text(priorities), json_array_elements(metadata_objects)
    ) WITH ORDINALITY AS t (external_id, uri, width, height, priority, metadata, ord)
  ORDER BY t.ord
$$;

DROP FUNCTION new_image_rows(bigint, json, json, json, json, json, json);

-- migrate:down
CREATE FUNCTION new_image_rows(dataset_id bigint, external_ids json, uris json, widths json,
  heights json, priorities json, metadata_objects json)
RETURNS TABLE (ord bigint, id bigint, external_id text, uri text, width integer,
  height integer, priority float8, metadata jsonb, annotations_per_image smallint)
LANGUAGE sql VOLATILE
AS $$
  WITH dataset AS MATERIALIZED (
    SELECT d.annotations_per_image FROM datasets d WHERE d.id = new_image_rows.dataset_id
    FOR SHARE
  )
  SELECT t.ord, nextval((SELECT pg_get_serial_sequence('images', 'id'))), t.external_id, t.uri,
    t.width::integer, t.height::integer, t.priority::float8, t.metadata::jsonb,
    d.annotations_per_image
  FROM dataset d
  CROSS JOIN ROWS FROM (
      json_array_elements_text(external_ids), json_array_elements_text(uris),
      json_array_elements_text(widths), json_array_elements_text(heights),
      json_array_elements_text(priorities), json_array_elements(metadata_objects)
    ) WITH ORDINALITY AS t (external_id, uri, width, height, priority, metadata, ord)
  ORDER BY t.ord
$$;

DROP FUNCTION new_image_rows(bigint, bigint, text, json, json, json, json, json, json);
