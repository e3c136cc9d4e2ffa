-- name: GetClaim :one
-- Claim :id as it stands, live or ended (the claims view: current_claims and ended_claims). For
-- diagnosing a refused renew, release or submit, and for an admin's release, which needs the
-- holder: current_claims has no index on claim_id (its rows are rewritten by every claim), so
-- this reads that table whole, one row per annotator and dataset.
SELECT id::text, dataset_id::text, image_id::text, user_id::text, created_at, expires_at, active,
  end_reason, active AND expires_at > now() AS live
FROM claims
WHERE id = :id::bigint;
