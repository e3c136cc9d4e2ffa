-- name: GetUser :one
SELECT id::text, name, role, created_at, disabled_at
FROM users
WHERE id = $1::bigint;
