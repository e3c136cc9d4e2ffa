-- name: EnsureAdmin :one
-- Start-up bootstrap from ADMIN_API_KEY: the user named :name becomes an enabled admin whose key is
-- :api_key_hash. Running it again with the same values changes nothing that matters.
--
-- The key moves: when another user holds :api_key_hash (ADMIN_NAME was changed and the key kept),
-- `moved` takes it from that user first, so the insert or update below does not trip over the key's
-- unique index. That user stays as it was otherwise (its tokens expire as usual). The insert reads
-- `moved`, which makes PostgreSQL run the UPDATE before it; the old row version it leaves no longer
-- counts for the unique check. key_moved_from names the users the key was taken from.
WITH moved AS (
  UPDATE users
  SET api_key_hash = NULL
  WHERE api_key_hash = :api_key_hash::bytea AND name <> :name::text
  RETURNING name
),
admin AS (
  INSERT INTO users (name, role, api_key_hash)
  SELECT :name::text, 'admin', :api_key_hash::bytea
  FROM (SELECT count(*) FROM moved) AS after_move
  ON CONFLICT (name) DO UPDATE
  SET role = 'admin', api_key_hash = EXCLUDED.api_key_hash, disabled_at = NULL
  RETURNING id, name, role, created_at, disabled_at
)
SELECT admin.id::text, admin.name, admin.role, admin.created_at, admin.disabled_at,
  coalesce((SELECT array_agg(moved.name ORDER BY moved.name) FROM moved), '{}') AS key_moved_from
FROM admin;
