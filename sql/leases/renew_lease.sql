-- name: RenewLease :one
-- Extends user :user_id's active lease :claim_id of kind :kind to the dataset's
-- claim_ttl_seconds from now, while its image is still theirs:
--   annotate  a live claim is renewed; an expired one only while nobody else has taken its slot
--             (the image is not done, the user has not annotated it, and its annotations plus
--             the other live leases leave room). Sets full_until from the new leases.
--   review    the image's review_lease is still this review's (live, or expired with nobody
--             else having taken the image since: another review would have replaced it) and the
--             image still waits for review.
--
-- Locks the user's current_leases row (found by user_id, the first column of its partition's
-- primary key) before the image row, like every lease statement. "Still theirs" is judged on the
-- image row, which is re-read in its newest version when the row is locked (EvalPlanQual), not by
-- the lease's own expires_at: a renew held up behind a claim that took the expired slot must see
-- that the slot has gone (that claim pruned the lease). Answers the image's URI too (the answer
-- carries a fresh media URL). No row: no such active lease of this user, it expired and its image
-- (or slot) has been taken, or the user (role :caller_role) may no longer see the dataset
-- (may_see_dataset).
WITH caller_lease AS MATERIALIZED (
  SELECT c.kind, c.dataset_id, c.claim_id, c.image_id,
    now() + make_interval(secs => d.claim_ttl_seconds) AS new_expires_at
  FROM current_leases c
  JOIN datasets d ON d.id = c.dataset_id
  WHERE c.kind = :kind::text AND c.user_id = :user_id::bigint AND c.claim_id = :claim_id::bigint
    AND c.active
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :user_id::bigint, :caller_role::text))
  FOR NO KEY UPDATE OF c
),
renewed AS (
  SELECT c.*, ROW(c.claim_id, :user_id::bigint, c.new_expires_at)::lease AS lease
  FROM caller_lease c
),
image_leased AS (
  UPDATE images i
  SET leases = CASE r.kind
      WHEN 'annotate' THEN kept_leases(i.dataset_id, i.leases, r.claim_id, NULL) || r.lease
      ELSE i.leases
    END,
    full_until = CASE r.kind
      WHEN 'annotate' THEN lease_full_until(
        cardinality(i.annotators),
        live_leases(i.leases, r.claim_id) || r.lease,
        i.annotations_per_image
      )
      ELSE i.full_until
    END,
    review_lease = CASE r.kind WHEN 'review' THEN r.lease ELSE i.review_lease END
  FROM renewed r
  WHERE i.id = r.image_id
    AND CASE r.kind
      WHEN 'annotate' THEN
        holds_live_lease(i.leases, r.claim_id)
        OR (
          NOT i.done
          AND NOT (:user_id::bigint = ANY (i.annotators))
          AND has_free_slot(i.annotators, i.leases, i.annotations_per_image, r.claim_id)
        )
      ELSE i.review = 'waiting' AND (i.review_lease).claim_id = r.claim_id
    END
  RETURNING i.id, i.uri
)
UPDATE current_leases cl
SET expires_at = r.new_expires_at
FROM renewed r
WHERE cl.kind = :kind::text AND cl.user_id = :user_id::bigint AND cl.dataset_id = r.dataset_id
  AND EXISTS (SELECT FROM image_leased)
RETURNING cl.claim_id::text AS id, cl.dataset_id::text, cl.image_id::text, cl.user_id::text,
  cl.claimed_at AS created_at, cl.expires_at, cl.active, NULL::text AS end_reason,
  NULL::text AS decision, true AS live, (SELECT uri FROM image_leased) AS image_uri;
