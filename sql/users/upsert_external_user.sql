-- name: UpsertExternalUser :one
-- A principal from an external identity provider: found by its token's `sub` (:subject), created on
-- first sight, its role (:role) kept in step with the token's role claim. A disabled row stays
-- disabled, and an existing row keeps its name. A new row is named :name (`idp:<sub>`, or a hashed
-- form for long subjects: lib/auth/tokens.ts externalUserNames) unless another user already has
-- that name (created before the `idp:` prefix was reserved), then :fallback_name (always the hashed
-- form), so the name never makes the insert fail.
INSERT INTO users (name, role, external_subject)
SELECT CASE
    WHEN EXISTS (
      SELECT FROM users taken
      WHERE taken.name = :name::text AND taken.external_subject IS DISTINCT FROM :subject::text
    ) THEN :fallback_name::text
    ELSE :name::text
  END,
  :role::text, :subject::text
ON CONFLICT (external_subject) DO UPDATE SET role = EXCLUDED.role
RETURNING id::text, name, role, disabled_at;
