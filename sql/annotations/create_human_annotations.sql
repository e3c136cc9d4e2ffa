-- name: CreateHumanAnnotations :many
-- create_human_annotation.sql for several submits at once, in one statement and one commit: the
-- server gathers the submits that arrive while earlier ones run (lib/db/batcher.ts). :submits is
-- a JSON array of {claim_id, image_id, user_id, role, labels, shapes, used, max_x, max_y} (role:
-- the user's; used: every label the annotation uses; max_x, max_y: its right- and bottom-most
-- coordinates), each with a claim, no two with the same user or the same image (the server keeps
-- them apart). Each is accepted or refused exactly as create_human_annotation.sql would (read it
-- for the checks: may_see_dataset is tested once per submit, on its dataset row); a refused one
-- returns no row and the server runs create_human_annotation.sql for it alone, which refuses it
-- again and explains why. One row per accepted submit: its annotation (image_id tells which). CTE
-- names are create_human_annotation.sql's, and so are the webhook events it writes.
--
-- Locks: the submits' current_claims rows first, in user order; then their image rows, in id order
-- (`locked_images`, an InitPlan of the update, so taken before any image is written): two batches
-- that share images (annotations_per_image > 1) or callers never deadlock. Single statements lock
-- one current_claims row and then one image, so they cannot close a cycle with a batch.
WITH submit AS MATERIALIZED (
  SELECT r.claim_id, r.image_id, r.user_id, r.role, r.labels, r.shapes, r.used, r.max_x, r.max_y
  -- One jsonb_to_record per element of an array, not json_to_recordset: a plan takes the array's
  -- unnest for 10 rows and json_to_recordset for 100, and at 100 caller_claim reads all of
  -- current_claims (a hash join) instead of probing its primary key. With 20,000 rows there (5,000
  -- annotators, 4 datasets each) a batch of 8 took 4.3 ms that way, 0.9 ms this way; with the
  -- bench's 32 rows the two are within 1 % (batch_latency.ts --submit-b, 26 a batch).
  FROM unnest(ARRAY(SELECT jsonb_array_elements(:submits::jsonb))) AS e (submit)
  CROSS JOIN LATERAL jsonb_to_record(e.submit) AS r (claim_id bigint, image_id bigint,
    user_id bigint, role text, labels text[], shapes jsonb, used text[], max_x float8,
    max_y float8)
),
caller_claim AS MATERIALIZED (
  SELECT c.user_id, c.dataset_id, c.claim_id, c.image_id, c.claimed_at, c.expires_at, n.role,
    n.labels, n.shapes, n.used, n.max_x, n.max_y
  FROM current_claims c
  JOIN submit n ON n.user_id = c.user_id AND n.claim_id = c.claim_id AND n.image_id = c.image_id
  WHERE c.active
  ORDER BY c.user_id
  FOR NO KEY UPDATE OF c
),
locked_images AS MATERIALIZED (
  SELECT i.id
  FROM images i
  WHERE i.id IN (SELECT image_id FROM caller_claim)
  ORDER BY i.id
  FOR NO KEY UPDATE
),
image_annotated AS (
  UPDATE images i
  SET annotators = i.annotators || d.user_id,
    -- Review and rework as in create_human_annotation.sql.
    review = CASE WHEN completes_image(i.done, i.annotators, d.user_id, i.annotations_per_image)
        AND review_selected(i.dataset_id, i.id, s.review_rate)
      THEN 'waiting' ELSE i.review END,
    review_since = CASE WHEN completes_image(i.done, i.annotators, d.user_id,
        i.annotations_per_image) AND review_selected(i.dataset_id, i.id, s.review_rate)
      THEN now() ELSE i.review_since END,
    rework_for = CASE WHEN i.rework_until > now() AND NOT completes_image(i.done, i.annotators,
        d.user_id, i.annotations_per_image)
      THEN array_remove(i.rework_for, d.user_id) ELSE '{}' END,
    rework_until = CASE WHEN i.rework_until > now() AND NOT completes_image(i.done, i.annotators,
        d.user_id, i.annotations_per_image)
        AND cardinality(array_remove(i.rework_for, d.user_id)) > 0
      THEN i.rework_until END,
    leases = kept_leases(i.dataset_id, i.leases, d.claim_id, NULL),
    done = cardinality(i.annotators) + 1 >= i.annotations_per_image,
    full_until = lease_full_until(
      cardinality(i.annotators) + 1, live_leases(i.leases, d.claim_id), i.annotations_per_image
    )
  FROM caller_claim d, datasets s
  WHERE i.id = d.image_id
    AND (SELECT count(*) FROM locked_images) > 0
    AND s.id = i.dataset_id
    -- Once per submit, on its dataset row.
    AND EXISTS (SELECT FROM may_see_dataset(s.id, s.access, d.user_id, d.role))
    AND d.used <@ s.labels
    AND (i.width IS NULL OR d.max_x <= i.width)
    AND (i.height IS NULL OR d.max_y <= i.height)
    AND NOT (d.user_id = ANY (i.annotators))
    AND (
      holds_live_lease(i.leases, d.claim_id)
      OR has_free_slot(i.annotators, i.leases, i.annotations_per_image, d.claim_id)
    )
  RETURNING i.id, i.dataset_id, d.user_id, d.claim_id, d.claimed_at, d.expires_at, d.labels,
    d.shapes, i.external_id, i.uri, i.annotators, i.annotations_per_image, i.review,
    -- This submit made the image done: it added the k-th annotator (each submit adds one).
    i.done AND cardinality(i.annotators) = i.annotations_per_image AS completed
),
claim_completed AS (
  UPDATE current_claims c
  SET active = false
  FROM image_annotated a
  WHERE c.user_id = a.user_id AND c.dataset_id = a.dataset_id
),
claim_ended AS (
  INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT a.claim_id, a.dataset_id, a.id, a.user_id, a.claimed_at, a.expires_at, now(),
    'completed'
  FROM image_annotated a
),
annotation_inserted AS (
  INSERT INTO annotations (image_id, dataset_id, source, author_id, claim_id, labels, shapes)
  SELECT a.id, a.dataset_id, 'human', a.user_id, a.claim_id, a.labels, a.shapes
  FROM image_annotated a
  RETURNING id, image_id, dataset_id, source, author_id, model_name, model_version, confidence,
    labels, shapes, created_at, status, reviewed_by, reviewed_at, review_comment
),
-- Webhook events, as in create_human_annotation.sql (which says why they are shaped so).
-- dataset.completed: once per dataset whose images this batch completed, with all of them.
event AS MATERIALIZED (
  SELECT e.dataset_id, e.type, e.data, nextval('webhook_event_ids') AS id
  FROM (
    SELECT i.dataset_id, 'annotation.created' AS type,
      jsonb_build_object(
        'annotation', webhook_annotation(n.id, n.image_id, n.dataset_id, n.source, n.author_id,
          n.model_name, n.model_version, n.confidence, n.labels, n.shapes, n.created_at, n.status,
          n.reviewed_by, n.reviewed_at, n.review_comment),
        'image', webhook_image(i.id, i.dataset_id, i.external_id, i.uri)
      ) AS data
    FROM image_annotated i
    JOIN annotation_inserted n ON n.image_id = i.id
    WHERE EXISTS (SELECT FROM webhook_subscribers('annotation.created', i.dataset_id))
    UNION ALL
    SELECT i.dataset_id, 'image.completed',
      jsonb_build_object(
        'image', webhook_image(i.id, i.dataset_id, i.external_id, i.uri),
        'annotations_per_image', i.annotations_per_image,
        'annotator_ids', (SELECT array_agg(u::text) FROM unnest(i.annotators) u),
        'completed_by_annotation_id', n.id::text
      )
    FROM image_annotated i
    JOIN annotation_inserted n ON n.image_id = i.id
    WHERE i.completed AND i.review IS DISTINCT FROM 'waiting'
      AND EXISTS (SELECT FROM webhook_subscribers('image.completed', i.dataset_id))
    UNION ALL
    SELECT c.dataset_id, 'dataset.completed',
      jsonb_build_object('dataset_id', c.dataset_id::text, 'last_image_id', c.last_image_id::text)
    FROM (
      SELECT i.dataset_id, array_agg(i.id) AS images, max(i.id) AS last_image_id
      FROM image_annotated i
      WHERE i.completed
      GROUP BY i.dataset_id
      -- The datasets' locks in id order, as every batch takes them: two never deadlock. (A
      -- volatile qual is not pushed below the sort.)
      ORDER BY i.dataset_id
    ) c
    WHERE CASE WHEN EXISTS (SELECT FROM webhook_subscribers('dataset.completed', c.dataset_id))
      THEN dataset_completed_now(c.dataset_id, c.images) ELSE false END
  ) e
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
