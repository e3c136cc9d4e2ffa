-- name: SetApiKey :one
-- Replaces the user's one key; the old key stops working at once. Disabled users keep none.
-- An identity-provider user (external_subject set) gets a key only when :by_admin (the caller is an
-- admin): a key it minted for itself would outlive its revocation at the provider.
UPDATE users
SET api_key_hash = :api_key_hash::bytea
WHERE id = :id::bigint AND disabled_at IS NULL AND (external_subject IS NULL OR :by_admin::boolean)
RETURNING id::text;
