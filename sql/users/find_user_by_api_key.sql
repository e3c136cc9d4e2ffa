-- name: FindUserByApiKey :one
-- Unknown, rotated-away and disabled keys all take this same single indexed lookup
-- (users_api_key_hash_key), so they cannot be told apart by timing.
SELECT id::text, name, role, disabled_at
FROM users
WHERE api_key_hash = :api_key_hash::bytea;
