-- name: RenewClaim :one
-- Extends user :user_id's active claim :claim_id to claim_ttl_seconds from now. A live claim is
-- renewed; an expired one only while nobody else has taken its slot (the image is not done, the
-- user has not annotated it, and its annotations plus the other live leases leave room).
--
-- Locks the user's current_claims row (found by the key's first column) before the image row,
-- like every claim statement. "Still live" is judged by the lease on the image row, which is
-- re-read in its newest version when the row is locked (EvalPlanQual), not by the claim's own
-- expires_at: a renew held up behind a claim that took the expired slot must see that the slot
-- has gone (that claim pruned the lease). Sets full_until from the new leases. Answers the
-- image's URI too (the answer carries a fresh media URL). No row: no such active claim of this
-- user, it expired and its slot has been taken, or the user (role :caller_role) may no longer see
-- the dataset (may_see_dataset).
WITH caller_claim AS MATERIALIZED (
  SELECT c.dataset_id, c.claim_id, c.image_id, c.claimed_at,
    now() + make_interval(secs => d.claim_ttl_seconds) AS new_expires_at
  FROM current_claims c
  JOIN datasets d ON d.id = c.dataset_id
  WHERE c.user_id = :user_id::bigint AND c.claim_id = :claim_id::bigint AND c.active
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :user_id::bigint, :caller_role::text))
  FOR NO KEY UPDATE OF c
),
image_leased AS (
  UPDATE images i
  SET leases = live_leases(i.leases, c.claim_id)
      || ROW(c.claim_id, :user_id::bigint, c.new_expires_at)::lease,
    full_until = lease_full_until(
      cardinality(i.annotators),
      live_leases(i.leases, c.claim_id)
        || ROW(c.claim_id, :user_id::bigint, c.new_expires_at)::lease,
      i.annotations_per_image
    )
  FROM caller_claim c
  WHERE i.id = c.image_id
    AND (
      holds_live_lease(i.leases, c.claim_id)
      OR (
        NOT i.done
        AND NOT (:user_id::bigint = ANY (i.annotators))
        AND has_free_slot(i.annotators, i.leases, i.annotations_per_image, c.claim_id)
      )
    )
  RETURNING i.id, i.uri
)
UPDATE current_claims cc
SET expires_at = c.new_expires_at
FROM caller_claim c
WHERE cc.user_id = :user_id::bigint AND cc.dataset_id = c.dataset_id
  AND EXISTS (SELECT FROM image_leased)
RETURNING cc.claim_id::text AS id, cc.dataset_id::text, cc.image_id::text, cc.user_id::text,
  cc.claimed_at AS created_at, cc.expires_at, cc.active, NULL::text AS end_reason, true AS live,
  (SELECT uri FROM image_leased) AS image_uri;
