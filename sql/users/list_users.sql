-- name: ListUsers :many
SELECT id::text, name, role, created_at, disabled_at
FROM users
ORDER BY users.id;
