-- name: EnqueuePing :one
-- A webhook.ping event for webhook :id, due now, whatever it subscribes to. No row: no such
-- webhook.
INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data)
SELECT w.id, nextval('webhook_event_ids'), 'webhook.ping',
  jsonb_build_object('webhook_id', w.id::text)
FROM webhooks w
WHERE w.id = :id::bigint
RETURNING event_id::text;
