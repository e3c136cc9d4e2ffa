-- name: ListWebhooks :many
-- Every webhook, oldest first (a handful: one per receiving endpoint). Never the secrets.
SELECT id::text, url, events, dataset_id::text, description, enabled, disabled_reason,
  failing_since, CASE WHEN previous_secret_until > now() THEN previous_secret_until END
    AS previous_secret_until, created_at, updated_at
FROM webhooks
ORDER BY id;
