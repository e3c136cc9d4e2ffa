-- name: UpsertExternalUser :one
-- A principal from an external identity provider: found by its token's `sub` ($3), created on
-- first sight, its role ($2) kept in step with the token's role claim. A disabled row stays
-- disabled, and an existing row keeps its name.
-- A new row is named $1 (`idp:<sub>`, or a hashed form for long subjects: lib/auth/tokens.ts
-- externalUserNames) unless another user already has that name (created before the `idp:`
-- prefix was reserved), then $4 (always the hashed form), so the name never makes the insert fail.
INSERT INTO users (name, role, external_subject)
SELECT CASE
    WHEN EXISTS (
      SELECT FROM users taken
      WHERE taken.name = $1::text AND taken.external_subject IS DISTINCT FROM $3::text
    ) THEN $4::text
    ELSE $1::text
  END,
  $2::text, $3::text
ON CONFLICT (external_subject) DO UPDATE SET role = EXCLUDED.role
RETURNING id::text, name, role, disabled_at;
