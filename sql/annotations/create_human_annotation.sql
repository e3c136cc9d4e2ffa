-- name: CreateHumanAnnotation :one
-- Records user $3's annotation of image $2 and completes their claim $1, in one statement.
--
-- With a claim ($1 not null): the claim must be active, the user's, and for this image; it is
-- locked first (FOR NO KEY UPDATE, reached through the EXISTS before the image row is written),
-- then the image row, the order every claim statement uses. The slot check runs on the image row
-- as updated, so it is re-checked on the row's newest version (EvalPlanQual) and cannot race with
-- a claim or another submit: the user has not annotated the image yet, and its human annotations
-- plus the live leases of other claims stay below annotations_per_image. An expired claim passes
-- while nobody else has taken its slot; once someone has, there is no row (claim_expired).
-- Without a claim ($1 null: an admin's correction): no slot check.
-- Content: $6 (every label the annotation uses) must be dataset labels and $7, $8 (its right- and
-- bottom-most coordinates) inside the image when its size is known; the route diagnoses a refusal.
--
-- Then: the user joins annotators (once), the claim's lease leaves the image (expired leases are
-- pruned), done becomes cardinality(annotators) >= annotations_per_image, the claim ends
-- ('completed'), and the annotation is inserted and returned. No row: the claim is not an active
-- claim of this user on this image, the image does not exist, or the slot is gone.
WITH claim AS MATERIALIZED (
  SELECT id
  FROM claims
  WHERE id = $1::bigint AND active AND user_id = $3::bigint AND image_id = $2::bigint
  FOR NO KEY UPDATE
),
annotated AS (
  UPDATE images i
  SET annotators = CASE WHEN $3::bigint = ANY (i.annotators) THEN i.annotators
      ELSE i.annotators || $3::bigint END,
    leases = ARRAY(
      SELECT l FROM unnest(i.leases) l
      WHERE l.expires_at > now() AND l.claim_id IS DISTINCT FROM $1::bigint
    ),
    done = cardinality(i.annotators) + CASE WHEN $3::bigint = ANY (i.annotators) THEN 0 ELSE 1 END
      >= d.annotations_per_image
  FROM datasets d
  WHERE i.id = $2::bigint
    AND d.id = i.dataset_id
    AND $6::text[] <@ d.labels
    AND (i.width IS NULL OR $7::float8 <= i.width)
    AND (i.height IS NULL OR $8::float8 <= i.height)
    AND (
      $1::bigint IS NULL
      OR (
        EXISTS (SELECT FROM claim)
        AND NOT ($3::bigint = ANY (i.annotators))
        AND cardinality(i.annotators)
          + (SELECT count(*) FROM unnest(i.leases) l
            WHERE l.expires_at > now() AND l.claim_id <> $1::bigint)
          < d.annotations_per_image
      )
    )
  RETURNING i.id, i.dataset_id
),
completed AS (
  UPDATE claims
  SET active = false, ended_at = now(), end_reason = 'completed'
  WHERE id = (SELECT id FROM claim) AND EXISTS (SELECT FROM annotated)
)
INSERT INTO annotations (image_id, dataset_id, source, author_id, claim_id, labels, shapes)
SELECT a.id, a.dataset_id, 'human', $3::bigint, $1::bigint, $4::text[], $5::jsonb
FROM annotated a
RETURNING id::text, image_id::text, dataset_id::text, source, author_id::text,
  model_name, model_version, confidence, labels, shapes, created_at;
