-- name: ListWebhookAttempts :many
-- Webhook :webhook_id's delivery attempts, newest first, :limit of them with ids below :before
-- (null: from the newest): a keyset over webhook_attempts_webhook_id_id_idx.
SELECT a.id::text, a.event_id::text, d.event_type, a.attempt, a.attempted_at, a.status_code,
  a.latency_ms, a.error, a.outcome, a.next_attempt_at
FROM webhook_attempts a
LEFT JOIN webhook_deliveries d ON d.webhook_id = a.webhook_id AND d.event_id = a.event_id
WHERE a.webhook_id = :webhook_id::bigint
  AND (:before::bigint IS NULL OR a.id < :before::bigint)
ORDER BY a.id DESC
LIMIT :limit::integer;
