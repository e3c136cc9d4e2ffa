-- name: EnsureAdmin :one
-- Start-up bootstrap from ADMIN_API_KEY: the user named $1 becomes an enabled admin whose key is
-- $2. Running it again with the same values changes nothing that matters.
INSERT INTO users (name, role, api_key_hash)
VALUES ($1::text, 'admin', $2::bytea)
ON CONFLICT (name) DO UPDATE
SET role = 'admin', api_key_hash = EXCLUDED.api_key_hash, disabled_at = NULL
RETURNING id::text, name, role, created_at, disabled_at;
