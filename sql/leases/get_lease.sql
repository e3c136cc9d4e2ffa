-- name: GetLease :one
-- Lease :id of kind :kind ('annotate': a claim, 'review': a review) as it stands, live or ended
-- (the leases view: the active rows of current_leases, then ended_leases), for diagnosing a
-- refused renew, release or submit, and for an admin's release, which needs the holder. No row
-- also when caller :caller_id (role :caller_role) may not see the lease's dataset
-- (may_see_dataset). The current_* partitions have no index on claim_id (their rows are rewritten
-- by every claim): this reads the kind's partition whole, one row per holder and dataset.
SELECT l.id::text, l.dataset_id::text, l.image_id::text, l.user_id::text, l.created_at,
  l.expires_at, l.active, l.end_reason, l.decision, l.active AND l.expires_at > now() AS live
FROM leases l
JOIN datasets d ON d.id = l.dataset_id
WHERE l.kind = :kind::text AND l.id = :id::bigint
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
LIMIT 1;
