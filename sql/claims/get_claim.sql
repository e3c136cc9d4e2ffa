-- name: GetClaim :one
-- Claim :id as it stands, live or ended (the claims view: current_claims and ended_claims). For
-- diagnosing a refused renew, release or submit, and for an admin's release, which needs the
-- holder: current_claims has no index on claim_id (its rows are rewritten by every claim), so
-- this reads that table whole, one row per annotator and dataset. No row also when caller
-- :caller_id (role :caller_role) may not see the claim's dataset (may_see_dataset).
SELECT c.id::text, c.dataset_id::text, c.image_id::text, c.user_id::text, c.created_at,
  c.expires_at, c.active, c.end_reason, c.active AND c.expires_at > now() AS live
FROM claims c
JOIN datasets d ON d.id = c.dataset_id
WHERE c.id = :id::bigint
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text));
