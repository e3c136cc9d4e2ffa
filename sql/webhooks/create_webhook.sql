-- name: CreateWebhook :one
-- A new enabled webhook with signing key :secret. No row when :dataset_id names no dataset, or
-- none caller :caller_id (role :caller_role) may see (may_see_dataset).
INSERT INTO webhooks (url, events, dataset_id, description, secret)
SELECT :url::text, :events::text[], :dataset_id::bigint, :description::text, :secret::bytea
WHERE :dataset_id::bigint IS NULL OR EXISTS (
  SELECT FROM datasets d
  WHERE d.id = :dataset_id::bigint
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
)
RETURNING id::text, url, events, dataset_id::text, description, enabled, disabled_reason,
  failing_since, CASE WHEN previous_secret_until > now() THEN previous_secret_until END
    AS previous_secret_until, created_at, updated_at;
