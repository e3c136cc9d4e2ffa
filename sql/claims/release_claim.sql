-- name: ReleaseClaim :one
-- Ends user $2's active claim $1 ('released') and frees its slot at once: its lease leaves the
-- image row (expired ones are pruned too) and full_until follows. Locks the user's
-- current_claims row (found by the key's first column) before the image row, like every claim
-- statement. No row: no such active claim of this user. (An admin releasing another user's
-- claim finds its holder first, with get_claim.sql.)
WITH c AS MATERIALIZED (
  SELECT c.dataset_id, c.claim_id, c.image_id, c.claimed_at, c.expires_at
  FROM current_claims c
  WHERE c.user_id = $2::bigint AND c.claim_id = $1::bigint AND c.active
  FOR NO KEY UPDATE
),
unleased AS (
  UPDATE images i
  SET leases = live_leases(i.leases, c.claim_id),
    full_until = lease_full_until(
      cardinality(i.annotators), live_leases(i.leases, c.claim_id), i.annotations_per_image
    )
  FROM c
  WHERE i.id = c.image_id
),
ended AS (
  INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT c.claim_id, c.dataset_id, c.image_id, $2::bigint, c.claimed_at, c.expires_at,
    least(now(), c.expires_at), 'released'
  FROM c
)
UPDATE current_claims cc
SET active = false
FROM c
WHERE cc.user_id = $2::bigint AND cc.dataset_id = c.dataset_id
RETURNING cc.claim_id::text AS id, cc.dataset_id::text, cc.image_id::text, cc.user_id::text,
  cc.claimed_at AS created_at, cc.expires_at, false AS active, 'released' AS end_reason,
  false AS live;
