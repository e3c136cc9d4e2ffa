-- name: ReleaseClaim :one
-- Ends user :user_id's active claim :claim_id ('released') and frees its slot at once: its lease
-- leaves the image row (expired ones are pruned too) and full_until follows. Locks the user's
-- current_claims row (found by the key's first column) before the image row, like every claim
-- statement. No row: no such active claim of this user. (An admin releasing another user's claim
-- finds its holder first, with get_claim.sql.) No row also when caller :caller_id (role
-- :caller_role: the holder, or that admin) may not see the claim's dataset (may_see_dataset).
-- With :skip, the holder also joins the image's skipped_by: the claim statements never offer it
-- to them again, while it stays claimable for everyone else. Written here because this statement
-- already locks and rewrites the image row, where the claim statements look (read
-- claim_next_image.sql's header).
WITH caller_claim AS MATERIALIZED (
  SELECT c.dataset_id, c.claim_id, c.image_id, c.claimed_at, c.expires_at
  FROM current_claims c
  JOIN datasets d ON d.id = c.dataset_id
  WHERE c.user_id = :user_id::bigint AND c.claim_id = :claim_id::bigint AND c.active
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
  FOR NO KEY UPDATE OF c
),
image_unleased AS (
  UPDATE images i
  SET leases = live_leases(i.leases, c.claim_id),
    full_until = lease_full_until(
      cardinality(i.annotators), live_leases(i.leases, c.claim_id), i.annotations_per_image
    ),
    skipped_by = CASE
      WHEN :skip::boolean AND (:user_id::bigint = ANY (i.skipped_by)) IS NOT TRUE
        THEN coalesce(i.skipped_by, '{}') || :user_id::bigint
      ELSE i.skipped_by
    END
  FROM caller_claim c
  WHERE i.id = c.image_id
),
claim_ended AS (
  INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT c.claim_id, c.dataset_id, c.image_id, :user_id::bigint, c.claimed_at, c.expires_at,
    least(now(), c.expires_at), 'released'
  FROM caller_claim c
)
UPDATE current_claims cc
SET active = false
FROM caller_claim c
WHERE cc.user_id = :user_id::bigint AND cc.dataset_id = c.dataset_id
RETURNING cc.claim_id::text AS id, cc.dataset_id::text, cc.image_id::text, cc.user_id::text,
  cc.claimed_at AS created_at, cc.expires_at, false AS active, 'released' AS end_reason,
  false AS live;
