-- name: CreateHumanAnnotations :many
-- create_human_annotation.sql for several submits at once, in one statement and one commit: the
-- server gathers the submits that arrive while earlier ones run (lib/db/batcher.ts). :submits is
-- a JSON array of {claim_id, image_id, user_id, labels, shapes, used, max_x, max_y} (used: every
-- label the annotation uses; max_x, max_y: its right- and bottom-most coordinates), each with a
-- claim, no two with the same user or the same image (the server keeps them apart). Each is
-- accepted or refused exactly as create_human_annotation.sql would (read it for the checks); a
-- refused one returns no row and the server runs create_human_annotation.sql for it alone, which
-- refuses it again and explains why. One row per accepted submit: its annotation (image_id tells
-- which). CTE names are create_human_annotation.sql's.
--
-- Locks: the submits' current_claims rows first, in user order; then their image rows, in id order
-- (`locked_images`, an InitPlan of the update, so taken before any image is written): two batches
-- that share images (annotations_per_image > 1) or callers never deadlock. Single statements lock
-- one current_claims row and then one image, so they cannot close a cycle with a batch.
WITH submit AS MATERIALIZED (
  SELECT r.claim_id, r.image_id, r.user_id, r.labels, r.shapes, r.used, r.max_x, r.max_y
  FROM json_to_recordset(:submits::json) AS r (claim_id bigint, image_id bigint, user_id bigint,
    labels text[], shapes jsonb, used text[], max_x float8, max_y float8)
),
caller_claim AS MATERIALIZED (
  SELECT c.user_id, c.dataset_id, c.claim_id, c.image_id, c.claimed_at, c.expires_at, n.labels,
    n.shapes, n.used, n.max_x, n.max_y
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
    leases = live_leases(i.leases, d.claim_id),
    done = cardinality(i.annotators) + 1 >= i.annotations_per_image,
    full_until = lease_full_until(
      cardinality(i.annotators) + 1, live_leases(i.leases, d.claim_id), i.annotations_per_image
    )
  FROM caller_claim d, datasets s
  WHERE i.id = d.image_id
    AND (SELECT count(*) FROM locked_images) > 0
    AND s.id = i.dataset_id
    AND d.used <@ s.labels
    AND (i.width IS NULL OR d.max_x <= i.width)
    AND (i.height IS NULL OR d.max_y <= i.height)
    AND NOT (d.user_id = ANY (i.annotators))
    AND (
      holds_live_lease(i.leases, d.claim_id)
      OR has_free_slot(i.annotators, i.leases, i.annotations_per_image, d.claim_id)
    )
  RETURNING i.id, i.dataset_id, d.user_id, d.claim_id, d.claimed_at, d.expires_at, d.labels,
    d.shapes
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
)
INSERT INTO annotations (image_id, dataset_id, source, author_id, claim_id, labels, shapes)
SELECT a.id, a.dataset_id, 'human', a.user_id, a.claim_id, a.labels, a.shapes
FROM image_annotated a
RETURNING id::text, image_id::text, dataset_id::text, source, author_id::text,
  model_name, model_version, confidence, labels, shapes, created_at;
