-- name: DisableUser :one
-- Idempotent: disabling twice keeps the first disabled_at.
UPDATE users
SET disabled_at = coalesce(disabled_at, now())
WHERE id = :id::bigint
RETURNING id::text, name, role, created_at, disabled_at;
