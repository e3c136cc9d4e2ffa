-- name: RecordAttempts :exec
-- What workers' sends came to, many at once (the worker gathers them, lib/db/batcher.ts):
-- :results is a JSON array of {webhook_id, event_id, attempt, attempted_at, status_code,
-- latency_ms, error, outcome, retry_in} (outcome: delivered, retrying, failed or gone; retry_in:
-- seconds until the next attempt, with 'retrying'). Each is logged in webhook_attempts, and its
-- delivery moves on: delivered, failed, or pending until the retry. A delivery redelivered or
-- re-leased since this attempt began (its attempt count moved on) keeps its new state; the
-- attempt is still logged.
-- The webhooks: one whose receiver answered 410 Gone is disabled ('gone'); one whose latest final
-- outcome here is 'failed' (its schedule ran out) is marked failing, and one whose latest is
-- 'delivered' is not any more.
WITH async_commit AS MATERIALIZED (
  -- Commits without waiting for the WAL flush: outcomes lost in a database crash leave their
  -- deliveries leased, and they are sent again when the lease ends (at least once).
  SELECT set_config('synchronous_commit', 'off', true) AS value
),
result AS MATERIALIZED (
  SELECT r.webhook_id, r.event_id, r.attempt, r.attempted_at, r.status_code, r.latency_ms,
    r.error, r.outcome,
    CASE WHEN r.outcome = 'retrying' THEN now() + make_interval(secs => r.retry_in) END
      AS next_attempt_at
  FROM json_to_recordset(:results::json) AS r (webhook_id bigint, event_id bigint,
    attempt smallint, attempted_at timestamptz, status_code smallint, latency_ms integer,
    error text, outcome text, retry_in float8)
  WHERE (SELECT value FROM async_commit) IS NOT NULL
),
logged AS (
  INSERT INTO webhook_attempts (webhook_id, event_id, attempt, attempted_at, status_code,
    latency_ms, error, outcome, next_attempt_at)
  SELECT webhook_id, event_id, attempt, attempted_at, status_code, latency_ms, error, outcome,
    next_attempt_at
  FROM result r
  -- Not for a webhook deleted while its send ran (its log went with it).
  WHERE EXISTS (SELECT FROM webhooks w WHERE w.id = r.webhook_id)
  ORDER BY attempted_at
),
delivery_updated AS (
  UPDATE webhook_deliveries d
  SET state = CASE r.outcome WHEN 'delivered' THEN 'delivered' WHEN 'retrying' THEN 'pending'
      ELSE 'failed' END,
    next_attempt_at = r.next_attempt_at
  FROM result r
  WHERE d.webhook_id = r.webhook_id AND d.event_id = r.event_id
    AND d.state = 'sending' AND d.attempts = r.attempt
),
webhook_outcome AS (
  SELECT r.webhook_id, bool_or(r.outcome = 'gone') AS gone,
    (array_agg(r.outcome ORDER BY r.attempted_at DESC)
      FILTER (WHERE r.outcome IN ('delivered', 'failed')))[1] AS final
  FROM result r
  GROUP BY r.webhook_id
)
UPDATE webhooks w
SET enabled = CASE WHEN o.gone THEN false ELSE w.enabled END,
  disabled_reason = CASE WHEN o.gone THEN 'gone' ELSE w.disabled_reason END,
  failing_since = CASE o.final
    WHEN 'failed' THEN coalesce(w.failing_since, now())
    WHEN 'delivered' THEN NULL
    ELSE w.failing_since
  END
FROM webhook_outcome o
WHERE w.id = o.webhook_id
  AND (o.gone OR o.final = 'delivered' AND w.failing_since IS NOT NULL
    OR o.final = 'failed' AND w.failing_since IS NULL);
