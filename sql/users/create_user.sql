-- name: CreateUser :one
-- A taken name returns no row, so the caller answers 409 without a failed statement.
INSERT INTO users (name, role, api_key_hash)
VALUES (:name::text, :role::text, :api_key_hash::bytea)
ON CONFLICT (name) DO NOTHING
RETURNING id::text, name, role, created_at, disabled_at;
