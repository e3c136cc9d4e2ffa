-- name: ReleaseClaim :one
-- Ends active claim $1 ('released') and removes its lease from the image, so the image is
-- claimable again at once. $2: the claim must be this user's; null (an admin) releases anyone's.
-- No row: no such active claim (already completed, released or expired), or not the user's.
-- The claim row is written first (the main query reads `ended`), then the image row: the order
-- every claim statement uses.
WITH ended AS (
  UPDATE claims
  SET active = false, ended_at = now(), end_reason = 'released'
  WHERE id = $1::bigint AND active AND ($2::bigint IS NULL OR user_id = $2::bigint)
  RETURNING id, dataset_id, image_id, user_id, created_at, expires_at, active, end_reason
),
unleased AS (
  UPDATE images i
  SET leases = ARRAY(
    SELECT l FROM unnest(i.leases) l
    WHERE l.expires_at > now() AND l.claim_id <> (SELECT id FROM ended)
  )
  WHERE i.id = (SELECT image_id FROM ended)
)
SELECT id::text, dataset_id::text, image_id::text, user_id::text, created_at, expires_at, active,
  end_reason, false AS live
FROM ended;
