-- name: RedeliverEvent :one
-- Sends event :event_id to webhook :webhook_id again, now, with a fresh retry schedule, whatever
-- became of it (delivered, failed, or waiting for a retry). A delivery being sent right now
-- ('sending') is left alone, so one event is never sent twice at once: its state comes back as
-- 'sending' and the caller answers 409. No row: the webhook never had that event.
UPDATE webhook_deliveries d
SET state = CASE WHEN d.state = 'sending' THEN d.state ELSE 'pending' END,
  attempts = CASE WHEN d.state = 'sending' THEN d.attempts ELSE 0 END,
  next_attempt_at = CASE WHEN d.state = 'sending' THEN d.next_attempt_at ELSE now() END
WHERE d.webhook_id = :webhook_id::bigint AND d.event_id = :event_id::bigint
RETURNING d.state;
