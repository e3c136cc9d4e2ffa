-- name: ListAppliedMigrations :many
-- dbmate's table; call only when schema_migrations_exists says it is there.
SELECT version FROM schema_migrations ORDER BY version;
