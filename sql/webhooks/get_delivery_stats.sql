-- name: GetDeliveryStats :one
-- For the metrics: deliveries still owed to enabled webhooks (pending or being sent), and the age
-- in seconds of the oldest of their events (0 when none). Reads webhook_deliveries_due_idx.
SELECT count(*)::integer AS queued,
  coalesce(extract(epoch FROM now() - min(d.created_at)), 0)::float8 AS oldest_seconds
FROM webhooks w
JOIN webhook_deliveries d ON d.webhook_id = w.id AND d.state IN ('pending', 'sending')
WHERE w.enabled;
