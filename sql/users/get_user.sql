-- name: GetUser :one
-- `external`: an identity-provider user (it signs in with the provider's tokens).
SELECT id::text, name, role, created_at, disabled_at, external_subject IS NOT NULL AS external
FROM users
WHERE id = :id::bigint;
