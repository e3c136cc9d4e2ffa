-- name: RecordAttempts :exec
-- What workers' sends came to, many at once (the worker gathers them): one attempt at each
-- position of the arrays :webhook_ids, :event_ids, :attempts, :attempted_at, :status_codes,
-- :latencies_ms, :errors, :outcomes (delivered, retrying, failed or gone) and :retries_in
-- (seconds until the next attempt, with 'retrying'). Each is logged in webhook_attempts, and its
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
      AS next_attempt_at,
    'sending'::text AS leased_state
  -- Arrays, not a JSON array of records: a generic plan takes unnest of an array parameter for
  -- 10 rows and json_to_recordset for 100, and at 100 the update below reads all of
  -- webhook_deliveries (a hash join) rather than probing its primary key (delivery_updated).
  FROM unnest(:webhook_ids::bigint[], :event_ids::bigint[], :attempts::smallint[],
    :attempted_at::timestamptz[], :status_codes::smallint[], :latencies_ms::integer[],
    :errors::text[], :outcomes::text[], :retries_in::float8[])
    AS r (webhook_id, event_id, attempt, attempted_at, status_code, latency_ms, error, outcome,
      retry_in)
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
  -- Each row probed by its primary key. The state is compared with a column, not the constant
  -- 'sending', which would let the planner read the partial due index instead: that index lists
  -- only the deliveries in flight, so it looks cheap, but it also holds the dead entries of every
  -- delivery since the table was last vacuumed. In the bench's webhook run (about 1,700
  -- deliveries/s, 31,000 in the table) a call took 1.73 ms and read 759 pages through that index,
  -- 6.5 ms and 2,568 pages reading the table whole, and 0.32 ms and 118 pages with the probes.
  WHERE d.webhook_id = r.webhook_id AND d.event_id = r.event_id
    AND d.state = r.leased_state AND d.attempts = r.attempt
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
