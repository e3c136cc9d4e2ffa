-- name: CreatePredictions :one
-- Many predictions for dataset :dataset_id by machine user :author_id in one statement (up to
-- 10,000 rows): unnest over typed arrays, so the parameter count is fixed however many rows there
-- are. Each row names its image by id (:image_ids) or by external_id (:external_ids); rows that
-- match no image of the dataset are skipped and reported by position (1-based) in not_found. Labels
-- come per row as a JSON array (:labels): PostgreSQL arrays cannot be ragged, so text[][] could not
-- hold lists of different lengths. Labels and shapes arrive as JSON text cast to jsonb here:
-- postgres.js would serialize a jsonb[] parameter whose elements are JS arrays as a
-- multidimensional array. Annotations are inserted in input order. Predictions do not touch the
-- image rows. No row at all when the dataset does not exist or the author (role :caller_role) may
-- not see it (may_see_dataset, tested once in `dataset`): nothing is written then. Their
-- annotation.created webhook events are written with them.
--
-- Each supersedes its model's current prediction on its image, as create_machine_annotation.sql
-- does (which says what a concurrent push of the same model does: a unique violation, and the
-- caller runs the batch again); within the batch, the last prediction of a model for an image is
-- the current one and the others are stored superseded.
WITH dataset AS MATERIALIZED (
  SELECT d.id
  FROM datasets d
  WHERE d.id = :dataset_id::bigint
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :author_id::bigint, :caller_role::text))
),
input AS (
  SELECT t.ord, t.model_name, t.model_version, t.confidence, t.labels::jsonb AS labels,
    t.shapes::jsonb AS shapes
  FROM unnest(:model_names::text[], :model_versions::text[], :confidences::float8[],
      :labels::text[], :shapes::text[])
    WITH ORDINALITY AS t (model_name, model_version, confidence, labels, shapes, ord)
),
resolved AS MATERIALIZED (
  SELECT n.ord, n.id, input.model_name, input.model_version, input.confidence, input.labels,
    input.shapes,
    row_number() OVER (PARTITION BY n.id, input.model_name ORDER BY n.ord DESC) = 1 AS last
  FROM named_images(:dataset_id::bigint, :image_ids::bigint[], :external_ids::text[]) n
  JOIN input ON input.ord = n.ord
  WHERE EXISTS (SELECT FROM dataset)
),
superseded AS MATERIALIZED (
  UPDATE annotations a
  SET status = 'superseded', txid = pg_current_xact_id()
  FROM (SELECT DISTINCT r.id, r.model_name FROM resolved r WHERE r.id IS NOT NULL) r
  WHERE a.image_id = r.id AND a.source = 'machine' AND a.model_name = r.model_name
    AND a.status = 'submitted'
  RETURNING a.id
),
inserted AS (
  INSERT INTO annotations (image_id, dataset_id, source, author_id, model_name, model_version,
    confidence, labels, shapes, status)
  SELECT r.id, :dataset_id::bigint, 'machine', :author_id::bigint, r.model_name, r.model_version,
    r.confidence,
    ARRAY(SELECT jsonb_array_elements_text(r.labels)), coalesce(r.shapes, '[]'::jsonb),
    CASE WHEN r.last THEN 'submitted' ELSE 'superseded' END
  FROM resolved r
  -- superseded runs first: the earlier predictions leave the unique index before these enter.
  WHERE r.id IS NOT NULL AND (SELECT count(*) FROM superseded) >= 0
  ORDER BY r.ord
  RETURNING id, image_id, dataset_id, source, author_id, model_name, model_version, confidence,
    labels, shapes, created_at, status, reviewed_by, reviewed_at, review_comment
),
-- annotation.created for each, for the webhooks subscribed (create_human_annotation.sql says how
-- the events are shaped): nothing built or written when none is.
event AS MATERIALIZED (
  SELECT 'annotation.created' AS type,
    jsonb_build_object(
      'annotation', webhook_annotation(n.id, n.image_id, n.dataset_id, n.source, n.author_id,
        n.model_name, n.model_version, n.confidence, n.labels, n.shapes, n.created_at, n.status,
        n.reviewed_by, n.reviewed_at, n.review_comment),
      'image', webhook_image(i.id, i.dataset_id, i.external_id, i.uri)
    ) AS data,
    nextval('webhook_event_ids') AS id
  FROM inserted n
  JOIN images i ON i.id = n.image_id
  WHERE EXISTS (SELECT FROM webhook_subscribers('annotation.created', :dataset_id::bigint))
),
event_queued AS (
  INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data)
  SELECT s.webhook_id, e.id, e.type, e.data
  FROM event e
  CROSS JOIN webhook_subscribers('annotation.created', :dataset_id::bigint) s
)
SELECT (SELECT count(*) FROM inserted)::integer AS created,
  coalesce((SELECT array_agg(ord ORDER BY ord) FROM resolved WHERE id IS NULL), '{}')::integer[]
    AS not_found
FROM dataset;
