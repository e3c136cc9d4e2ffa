-- migrate:up
-- The rules several statements apply, each defined once (beside live_leases and
-- lease_full_until, db/migrations/20261202021000_current_claims.sql). Their arguments are the
-- image row's own columns, so a claim or submit that finds its row changed by a concurrent write
-- evaluates them again on the row's newest version (EvalPlanQual re-checks the whole qual).
-- image_status and has_free_slot are single expressions, which PostgreSQL inlines into the
-- calling statement; the others run as functions.

-- Exactly when an image with `annotated` human annotations and the live leases `live` stops
-- having every remaining slot leased, or null while a slot is free: the expiry at which the
-- leases left fall below the k - annotated slots: the earliest expiry when the leases fill
-- exactly the slots left, a later one when there are more of them (k lowered while they were
-- held).
CREATE OR REPLACE FUNCTION lease_full_until(annotated integer, live lease[], k integer)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN annotated < k AND annotated + cardinality(live) >= k
    THEN (
      SELECT l.expires_at FROM unnest(live) l
      ORDER BY l.expires_at
      OFFSET cardinality(live) - (k - annotated)
      LIMIT 1
    )
  END
$$;

-- An image's status as the API shows it: 'done' once it has its k human annotations,
-- 'in_progress' while every remaining slot is under a live lease (full_until ahead), else
-- 'pending'.
CREATE FUNCTION image_status(done boolean, full_until timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN done THEN 'done' WHEN full_until > now() THEN 'in_progress' ELSE 'pending' END
$$;

-- Whether an image has a slot nobody holds, leaving the claim `except_claim` out of the leases
-- (null: none): its human annotations plus the other live leases are fewer than k.
CREATE FUNCTION has_free_slot(annotators bigint[], leases lease[], k smallint,
  except_claim bigint)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT cardinality(annotators) + cardinality(live_leases(leases, except_claim)) < k
$$;

-- Whether claim `claim_id` still holds an unexpired lease on the image.
CREATE FUNCTION holds_live_lease(leases lease[], claim_id bigint) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT EXISTS (
    SELECT FROM unnest(leases) l WHERE l.claim_id = holds_live_lease.claim_id
      AND l.expires_at > now()
  )
$$;

-- The image's latest machine annotation per model name (the highest id wins, whatever the
-- version), ordered by model name, as the JSON objects the claim answers carry to pre-fill the
-- editor. Reads annotations_image_id_id_idx.
CREATE FUNCTION latest_predictions(image_id bigint) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.model_name), '[]'::jsonb)
  FROM (
    SELECT DISTINCT ON (a.model_name)
      a.id::text, a.image_id::text, a.dataset_id::text, a.source, a.author_id::text,
      a.model_name, a.model_version, a.confidence, a.labels, a.shapes, a.created_at
    FROM annotations a
    WHERE a.image_id = latest_predictions.image_id AND a.source = 'machine'
    ORDER BY a.model_name, a.id DESC
  ) p
$$;

-- The changes feed's horizon (sql/annotations/list_dataset_annotations.sql says why): the
-- oldest transaction the calling statement's snapshot saw running in this database, or the
-- snapshot's xmax when none was. STABLE, so it reads the caller's snapshot, not one of its own.
-- Transactions pg_stat_activity shows running in another database are left out: they cannot
-- write this database's annotations, and a long one would hold the feed back.
CREATE FUNCTION feed_horizon() RETURNS xid8
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(
    (
      SELECT min(x)
      FROM pg_snapshot_xip(pg_current_snapshot()) x
      WHERE NOT EXISTS (
        SELECT FROM pg_stat_activity p
        WHERE p.datname <> current_database()
          AND p.backend_xid::text::bigint = x::text::bigint % 4294967296
      )
    ),
    pg_snapshot_xmax(pg_current_snapshot())
  )
$$;

-- A registerImages batch as the rows to insert, in input order: element i of each JSON array is
-- row i (metadata holds objects), cast to the columns' types, with the id each row would get
-- (drawn from the identity sequence up front, in input order) and the dataset's
-- annotations_per_image, read with the dataset row locked FOR SHARE: an updateDataset changing k
-- (which rewrites it on every image) waits for the batch, or the batch waits for it and reads the
-- new value. No rows when the dataset does not exist. One JSON array per column: postgres.js
-- serialises it faster than typed arrays, and PostgreSQL reads it faster than an array of row
-- objects (docs/decisions). Read by register_images.sql and insert_new_images.sql.
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

-- The images of dataset `dataset_id` that a bulk request's items name, each by id or by
-- external_id: one row per item, by position (1-based), with the image's id or null when the
-- item names nothing in the dataset. Read by set_priorities.sql and create_predictions.sql.
CREATE FUNCTION named_images(dataset_id bigint, image_ids bigint[], external_ids text[])
RETURNS TABLE (ord bigint, id bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT t.ord, coalesce(by_id.id, by_ext.id)
  FROM unnest(image_ids, external_ids) WITH ORDINALITY AS t (image_id, external_id, ord)
  LEFT JOIN images by_id ON t.image_id IS NOT NULL
    AND by_id.id = t.image_id AND by_id.dataset_id = named_images.dataset_id
  LEFT JOIN images by_ext ON t.external_id IS NOT NULL
    AND by_ext.dataset_id = named_images.dataset_id AND by_ext.external_id = t.external_id
$$;

-- migrate:down
DROP FUNCTION named_images(bigint, bigint[], text[]);
DROP FUNCTION new_image_rows(bigint, json, json, json, json, json, json);
DROP FUNCTION feed_horizon();
DROP FUNCTION latest_predictions(bigint);
DROP FUNCTION holds_live_lease(lease[], bigint);
DROP FUNCTION has_free_slot(bigint[], lease[], smallint, bigint);
DROP FUNCTION image_status(boolean, timestamptz);
CREATE OR REPLACE FUNCTION lease_full_until(annotated integer, live lease[], k integer)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN annotated < k AND annotated + cardinality(live) >= k
    THEN (SELECT min(l.expires_at) FROM unnest(live) l)
  END
$$;
