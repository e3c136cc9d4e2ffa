-- name: LockMigrations :exec
-- A session-level advisory lock: held across the separate dbmate process's whole run, so
-- concurrent migrators (two replicas starting at once) take turns. The key is arbitrary.
SELECT pg_advisory_lock(7240119001);
