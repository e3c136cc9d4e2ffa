-- name: CreateHumanAnnotation :one
-- Records user $3's annotation of image $2 and completes their claim $1, in one statement.
--
-- With a claim ($1 not null): it must be the user's active claim on this image. Their
-- current_claims row is locked first (found by the key's first column, user_id), then the image
-- row: the order every claim statement uses. The checks run on the image row being updated, so
-- they are evaluated again on its newest version (EvalPlanQual) and cannot race with a claim,
-- a release or another submit:
--   - the user has not annotated the image yet (never the same annotator twice);
--   - the claim's lease is still on the row and unexpired: accepted, whatever else happened
--     meanwhile (an admin's correction, a lowered annotations_per_image); or it has expired
--     and the image's human annotations plus the other live leases still leave a slot: accepted
--     too, as long as nobody else has taken the slot. Judged by the lease on the image row, not
--     by the claim's own expires_at: any claim that takes an expired slot prunes that lease in
--     the same write, so a submit held up behind it sees the slot gone.
-- Without a claim ($1 null: an admin's correction): no slot check.
-- Content: $6 (every label the annotation uses) must be dataset labels and $7, $8 (its right- and
-- bottom-most coordinates) inside the image when its size is known; the route diagnoses a refusal.
--
-- Then: the user joins annotators (once), the claim's lease leaves the image (expired leases are
-- pruned), done becomes cardinality(annotators) >= annotations_per_image, full_until follows,
-- the claim ends ('completed': its current_claims row turns inactive, a HOT update, and it enters
-- ended_claims), and the annotation is inserted and returned. No row: the claim is not an
-- active claim of this user on this image, the image does not exist, or the slot is gone.
WITH desk AS MATERIALIZED (
  SELECT dataset_id, claimed_at, expires_at
  FROM current_claims
  WHERE user_id = $3::bigint AND claim_id = $1::bigint AND image_id = $2::bigint AND active
  FOR NO KEY UPDATE
),
annotated AS (
  UPDATE images i
  SET annotators = CASE WHEN $3::bigint = ANY (i.annotators) THEN i.annotators
      ELSE i.annotators || $3::bigint END,
    leases = live_leases(i.leases, $1::bigint),
    done = cardinality(i.annotators) + CASE WHEN $3::bigint = ANY (i.annotators) THEN 0 ELSE 1 END
      >= i.annotations_per_image,
    full_until = lease_full_until(
      cardinality(i.annotators) + CASE WHEN $3::bigint = ANY (i.annotators) THEN 0 ELSE 1 END,
      live_leases(i.leases, $1::bigint),
      i.annotations_per_image
    )
  FROM datasets d
  WHERE i.id = $2::bigint
    AND d.id = i.dataset_id
    AND $6::text[] <@ d.labels
    AND (i.width IS NULL OR $7::float8 <= i.width)
    AND (i.height IS NULL OR $8::float8 <= i.height)
    AND (
      $1::bigint IS NULL
      OR (
        EXISTS (SELECT FROM desk)
        AND NOT ($3::bigint = ANY (i.annotators))
        AND (
          EXISTS (
            SELECT FROM unnest(i.leases) l
            WHERE l.claim_id = $1::bigint AND l.expires_at > now()
          )
          OR cardinality(i.annotators) + cardinality(live_leases(i.leases, $1::bigint))
            < i.annotations_per_image
        )
      )
    )
  RETURNING i.id, i.dataset_id
),
completed AS (
  UPDATE current_claims
  SET active = false
  WHERE user_id = $3::bigint AND dataset_id = (SELECT dataset_id FROM desk)
    AND EXISTS (SELECT FROM annotated)
),
ended AS (
  INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT $1::bigint, a.dataset_id, a.id, $3::bigint, d.claimed_at, d.expires_at, now(),
    'completed'
  FROM annotated a
  CROSS JOIN desk d
)
INSERT INTO annotations (image_id, dataset_id, source, author_id, claim_id, labels, shapes)
SELECT a.id, a.dataset_id, 'human', $3::bigint, $1::bigint, $4::text[], $5::jsonb
FROM annotated a
RETURNING id::text, image_id::text, dataset_id::text, source, author_id::text,
  model_name, model_version, confidence, labels, shapes, created_at;
