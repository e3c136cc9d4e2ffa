-- name: UpsertExternalUser :one
-- A principal from an external identity provider: found by its token's `sub`, created on first
-- sight, its role kept in step with the token's role claim. A disabled row stays disabled.
INSERT INTO users (name, role, external_subject)
VALUES ($1::text, $2::text, $3::text)
ON CONFLICT (external_subject) DO UPDATE SET role = EXCLUDED.role
RETURNING id::text, name, role, disabled_at;
