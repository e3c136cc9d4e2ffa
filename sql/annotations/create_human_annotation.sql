-- name: CreateHumanAnnotation :one
-- Records user :user_id's annotation of image :image_id and completes their claim :claim_id, in
-- one statement.
--
-- With a claim (:claim_id not null): it must be the user's active claim on this image. Their
-- current_claims row is locked first (found by the key's first column, user_id), then the image
-- row: the order every claim statement uses. The checks run on the image row being updated, so
-- they are evaluated again on its newest version (EvalPlanQual) and cannot race with a claim, a
-- release or another submit:
--   - the user has not annotated the image yet (never the same annotator twice);
--   - the claim still holds a live lease on the row: accepted, whatever else happened meanwhile
--     (an admin's correction, a lowered annotations_per_image); or its lease expired and the
--     image still has a free slot: accepted too, as long as nobody else has taken the slot.
--     Judged by the lease on the image row, not by the claim's own expires_at: a claim that takes
--     an expired slot prunes that lease in the same write, so a submit held up behind it sees
--     the slot gone.
-- Without a claim (:claim_id null: an admin's correction): no slot check.
-- Content: :used_labels (every label the annotation uses) must be dataset labels, and :max_x,
-- :max_y (its right- and bottom-most coordinates) inside the image when its size is known; the
-- caller diagnoses a refusal.
--
-- Then: the user joins annotators (once), the claim's lease leaves the image (expired leases are
-- pruned), done becomes cardinality(annotators) >= annotations_per_image, full_until follows,
-- the claim ends ('completed': its current_claims row turns inactive, a HOT update, and it enters
-- ended_claims), and the annotation is inserted and returned. No row: the claim is not an active
-- claim of this user on this image, the image does not exist, or the slot is gone.
WITH caller_claim AS MATERIALIZED (
  SELECT dataset_id, claimed_at, expires_at
  FROM current_claims
  WHERE user_id = :user_id::bigint AND claim_id = :claim_id::bigint
    AND image_id = :image_id::bigint AND active
  FOR NO KEY UPDATE
),
image_annotated AS (
  UPDATE images i
  SET annotators = CASE WHEN :user_id::bigint = ANY (i.annotators) THEN i.annotators
      ELSE i.annotators || :user_id::bigint END,
    leases = live_leases(i.leases, :claim_id::bigint),
    done = cardinality(i.annotators)
        + CASE WHEN :user_id::bigint = ANY (i.annotators) THEN 0 ELSE 1 END
      >= i.annotations_per_image,
    full_until = lease_full_until(
      cardinality(i.annotators)
        + CASE WHEN :user_id::bigint = ANY (i.annotators) THEN 0 ELSE 1 END,
      live_leases(i.leases, :claim_id::bigint),
      i.annotations_per_image
    )
  FROM datasets d
  WHERE i.id = :image_id::bigint
    AND d.id = i.dataset_id
    AND :used_labels::text[] <@ d.labels
    AND (i.width IS NULL OR :max_x::float8 <= i.width)
    AND (i.height IS NULL OR :max_y::float8 <= i.height)
    AND (
      :claim_id::bigint IS NULL
      OR (
        EXISTS (SELECT FROM caller_claim)
        AND NOT (:user_id::bigint = ANY (i.annotators))
        AND (
          holds_live_lease(i.leases, :claim_id::bigint)
          OR has_free_slot(i.annotators, i.leases, i.annotations_per_image, :claim_id::bigint)
        )
      )
    )
  RETURNING i.id, i.dataset_id
),
claim_completed AS (
  UPDATE current_claims
  SET active = false
  WHERE user_id = :user_id::bigint AND dataset_id = (SELECT dataset_id FROM caller_claim)
    AND EXISTS (SELECT FROM image_annotated)
),
claim_ended AS (
  INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT :claim_id::bigint, a.dataset_id, a.id, :user_id::bigint, c.claimed_at, c.expires_at,
    now(), 'completed'
  FROM image_annotated a
  CROSS JOIN caller_claim c
)
INSERT INTO annotations (image_id, dataset_id, source, author_id, claim_id, labels, shapes)
SELECT a.id, a.dataset_id, 'human', :user_id::bigint, :claim_id::bigint, :labels::text[],
  :shapes::jsonb
FROM image_annotated a
RETURNING id::text, image_id::text, dataset_id::text, source, author_id::text,
  model_name, model_version, confidence, labels, shapes, created_at;
