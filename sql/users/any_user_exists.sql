-- name: AnyUserExists :one
SELECT EXISTS (SELECT 1 FROM users) AS exists;
