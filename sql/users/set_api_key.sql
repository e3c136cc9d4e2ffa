-- name: SetApiKey :one
-- Replaces the user's one key; the old key stops working at once. Disabled users keep none.
UPDATE users
SET api_key_hash = $2::bytea
WHERE id = $1::bigint AND disabled_at IS NULL
RETURNING id::text;
