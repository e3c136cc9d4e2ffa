-- name: CreateHumanAnnotations :many
-- create_human_annotation.sql for several submits at once, in one statement and one commit: the
-- server gathers the submits that arrive while earlier ones run (lib/db/batcher.ts). $1 is a JSON
-- array of {claim_id, image_id, user_id, labels, shapes, used, max_x, max_y} (used: every label
-- the annotation uses; max_x, max_y: its right- and bottom-most coordinates), each with a claim, no
-- two with the same user or the same image (the server keeps them apart). Each is accepted or
-- refused exactly as create_human_annotation.sql would (read it for the checks); a refused one
-- returns no row and the server runs create_human_annotation.sql for it alone, which refuses it
-- again and explains why. One row per accepted submit: its annotation (image_id tells which).
--
-- Locks: the submits' current_claims rows first, in user order; then their image rows, in id
-- order (`targets`, an InitPlan of the update, so taken before any image is written): two batches
-- that share images (annotations_per_image > 1) or callers never deadlock. Single statements
-- lock one current_claims row and then one image, so they cannot close a cycle with a batch.
WITH input AS MATERIALIZED (
  SELECT r.claim_id, r.image_id, r.user_id, r.labels, r.shapes, r.used, r.max_x, r.max_y
  FROM json_to_recordset($1::json) AS r (claim_id bigint, image_id bigint, user_id bigint,
    labels text[], shapes jsonb, used text[], max_x float8, max_y float8)
),
desk AS MATERIALIZED (
  SELECT c.user_id, c.dataset_id, c.claim_id, c.image_id, c.claimed_at, c.expires_at, n.labels,
    n.shapes, n.used, n.max_x, n.max_y
  FROM current_claims c
  JOIN input n ON n.user_id = c.user_id AND n.claim_id = c.claim_id AND n.image_id = c.image_id
  WHERE c.active
  ORDER BY c.user_id
  FOR NO KEY UPDATE OF c
),
targets AS MATERIALIZED (
  SELECT i.id
  FROM images i
  WHERE i.id IN (SELECT image_id FROM desk)
  ORDER BY i.id
  FOR NO KEY UPDATE
),
annotated AS (
  UPDATE images i
  SET annotators = i.annotators || d.user_id,
    leases = live_leases(i.leases, d.claim_id),
    done = cardinality(i.annotators) + 1 >= i.annotations_per_image,
    full_until = lease_full_until(
      cardinality(i.annotators) + 1, live_leases(i.leases, d.claim_id), i.annotations_per_image
    )
  FROM desk d, datasets s
  WHERE i.id = d.image_id
    AND (SELECT count(*) FROM targets) > 0
    AND s.id = i.dataset_id
    AND d.used <@ s.labels
    AND (i.width IS NULL OR d.max_x <= i.width)
    AND (i.height IS NULL OR d.max_y <= i.height)
    AND NOT (d.user_id = ANY (i.annotators))
    AND (
      EXISTS (
        SELECT FROM unnest(i.leases) l
        WHERE l.claim_id = d.claim_id AND l.expires_at > now()
      )
      OR cardinality(i.annotators) + cardinality(live_leases(i.leases, d.claim_id))
        < i.annotations_per_image
    )
  RETURNING i.id, i.dataset_id, d.user_id, d.claim_id, d.claimed_at, d.expires_at, d.labels,
    d.shapes
),
completed AS (
  UPDATE current_claims c
  SET active = false
  FROM annotated a
  WHERE c.user_id = a.user_id AND c.dataset_id = a.dataset_id
),
ended AS (
  INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT a.claim_id, a.dataset_id, a.id, a.user_id, a.claimed_at, a.expires_at, now(),
    'completed'
  FROM annotated a
)
INSERT INTO annotations (image_id, dataset_id, source, author_id, claim_id, labels, shapes)
SELECT a.id, a.dataset_id, 'human', a.user_id, a.claim_id, a.labels, a.shapes
FROM annotated a
RETURNING id::text, image_id::text, dataset_id::text, source, author_id::text,
  model_name, model_version, confidence, labels, shapes, created_at;
