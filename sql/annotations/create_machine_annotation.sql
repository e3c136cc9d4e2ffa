-- name: CreateMachineAnnotation :one
-- A prediction for image :image_id by machine user :author_id: no claim, and it does not count
-- toward annotations_per_image. No row when the image does not exist or the content does not fit:
-- :used_labels (every label used) must be dataset labels, :max_x and :max_y (the right- and
-- bottom-most coordinates) inside the image when its size is known. No row also when the author
-- (role :caller_role) may not see the image's dataset (may_see_dataset): then the image is, to
-- it, one that does not exist.
--
-- It supersedes the same model's current prediction on the image (superseded, which runs first:
-- the insert reads its count), so the image keeps one current prediction per model
-- (annotations_current_prediction_key). A concurrent push of the same model to the same image
-- makes the insert fail with a unique violation once that push commits; the caller runs the
-- statement again. Its annotation.created webhook event is written with it, for the webhooks
-- subscribed (create_human_annotation.sql says how the events are shaped).
WITH target AS MATERIALIZED (
  SELECT i.id, i.dataset_id
  FROM images i
  JOIN datasets d ON d.id = i.dataset_id
  WHERE i.id = :image_id::bigint
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :author_id::bigint, :caller_role::text))
    AND :used_labels::text[] <@ d.labels
    AND (i.width IS NULL OR :max_x::float8 <= i.width)
    AND (i.height IS NULL OR :max_y::float8 <= i.height)
),
superseded AS MATERIALIZED (
  UPDATE annotations a
  SET status = 'superseded', txid = pg_current_xact_id()
  FROM target t
  WHERE a.image_id = t.id AND a.source = 'machine' AND a.model_name = :model_name::text
    AND a.status = 'submitted'
  RETURNING a.id
),
annotation_inserted AS (
  INSERT INTO annotations (image_id, dataset_id, source, author_id, model_name, model_version,
    confidence, labels, shapes)
  SELECT t.id, t.dataset_id, 'machine', :author_id::bigint, :model_name::text,
    :model_version::text, :confidence::float8, :labels::text[], :shapes::jsonb
  FROM target t
  WHERE (SELECT count(*) FROM superseded) >= 0
  RETURNING id, image_id, dataset_id, source, author_id, model_name, model_version, confidence,
    labels, shapes, created_at, status, reviewed_by, reviewed_at, review_comment
),
event AS MATERIALIZED (
  SELECT n.dataset_id, 'annotation.created' AS type,
    jsonb_build_object(
      'annotation', webhook_annotation(n.id, n.image_id, n.dataset_id, n.source, n.author_id,
        n.model_name, n.model_version, n.confidence, n.labels, n.shapes, n.created_at, n.status,
        n.reviewed_by, n.reviewed_at, n.review_comment),
      'image', webhook_image(i.id, i.dataset_id, i.external_id, i.uri)
    ) AS data,
    nextval('webhook_event_ids') AS id
  FROM annotation_inserted n
  JOIN images i ON i.id = n.image_id
  WHERE EXISTS (SELECT FROM webhook_subscribers('annotation.created', n.dataset_id))
),
event_queued AS (
  INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data)
  SELECT s.webhook_id, e.id, e.type, e.data
  FROM event e
  CROSS JOIN LATERAL webhook_subscribers(e.type, e.dataset_id) s
)
SELECT id::text, image_id::text, dataset_id::text, source, author_id::text,
  model_name, model_version, confidence, labels, shapes, created_at, status, reviewed_by::text,
  reviewed_at, review_comment
FROM annotation_inserted;
