-- name: DeleteWebhook :one
-- Deletes webhook :id with its deliveries and their attempts (webhook_deliveries has no foreign
-- key to cascade: the migration says why). No row: no such webhook.
WITH deliveries_deleted AS (
  DELETE FROM webhook_deliveries WHERE webhook_id = :id::bigint
),
attempts_deleted AS (
  DELETE FROM webhook_attempts WHERE webhook_id = :id::bigint
)
DELETE FROM webhooks
WHERE id = :id::bigint
RETURNING id::text;
