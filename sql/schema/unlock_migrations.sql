-- name: UnlockMigrations :exec
SELECT pg_advisory_unlock(7240119001);
