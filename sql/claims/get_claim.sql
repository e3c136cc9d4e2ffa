-- name: GetClaim :one
-- `live`: the claim still holds its slot (active and unexpired). An active claim that is not live
-- may still be renewed or submitted while nobody else has taken the slot.
SELECT id::text, dataset_id::text, image_id::text, user_id::text, created_at, expires_at, active,
  end_reason, active AND expires_at > now() AS live
FROM claims
WHERE id = $1::bigint;
