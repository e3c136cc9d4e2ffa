-- name: ClaimDeliveries :many
-- Takes up to :limit due deliveries for a worker to send, at most :per_webhook of each enabled
-- webhook less what this worker already has in flight for it (:busy_ids, :busy_counts), taken
-- round-robin across webhooks (each one's first, then each one's second, …) so one webhook's
-- backlog never fills a batch. Due: 'pending' with next_attempt_at past, or 'sending' whose lease
-- ran out (its worker died mid-send).
--
-- Each is leased: 'sending' until now + :lease_seconds (longer than a send's timeout), with its
-- attempt counted, and committed at once, so the row lock lasts only this statement. Rows are
-- locked FOR UPDATE SKIP LOCKED in a MATERIALIZED lateral per webhook (LIMIT honoured, the filter
-- inside the locked subquery, due order from webhook_deliveries_due_idx): workers of several
-- replicas take disjoint rows, and a row another worker is leasing is skipped, never waited for.
-- Every row comes back with what sending it needs: the webhook's URL and signing keys (the
-- previous one only while a rotation's overlap lasts), and when it fell due (due_at).
--
-- :since_ids / :since_ats: for some webhooks, a time before which the worker knows of nothing due
-- (lib/webhooks/worker.ts); their scan starts there instead of at the index's head. A delivery
-- that leaves the due index (delivered, failed, or leased: its next_attempt_at moves) leaves a
-- dead entry at its old place until the table is vacuumed, and deliveries leave from the head, so
-- a scan from the head steps over every delivery since the last vacuum: with 300,000 of them, 1,350
-- pages and 2.2-2.6 ms a call (decision 0013).
WITH async_commit AS MATERIALIZED (
  -- Commits without waiting for the WAL flush (is_local: this transaction only): a lease lost in
  -- a database crash only makes its delivery due again, which at least once allows.
  SELECT set_config('synchronous_commit', 'off', true) AS value
),
webhook AS MATERIALIZED (
  SELECT w.id, w.url, w.secret,
    CASE WHEN w.previous_secret_until > now() THEN w.previous_secret END AS previous_secret,
    :per_webhook::integer - coalesce(b.busy, 0) AS free,
    coalesce(s.since, '-infinity') AS since
  FROM webhooks w
  LEFT JOIN unnest(:busy_ids::bigint[], :busy_counts::integer[]) AS b (webhook_id, busy)
    ON b.webhook_id = w.id
  LEFT JOIN unnest(:since_ids::bigint[], :since_ats::timestamptz[]) AS s (webhook_id, since)
    ON s.webhook_id = w.id
  WHERE w.enabled AND coalesce(b.busy, 0) < :per_webhook::integer
    AND (SELECT value FROM async_commit) IS NOT NULL
),
due AS MATERIALIZED (
  SELECT r.webhook_id, r.event_id, r.next_attempt_at, r.n
  FROM (
    SELECT d.webhook_id, d.event_id, d.next_attempt_at,
      row_number() OVER (PARTITION BY d.webhook_id ORDER BY d.next_attempt_at) AS n, w.free
    FROM webhook w
    CROSS JOIN LATERAL (
      SELECT d.webhook_id, d.event_id, d.next_attempt_at
      FROM webhook_deliveries d
      WHERE d.webhook_id = w.id AND d.state IN ('pending', 'sending')
        AND d.next_attempt_at >= w.since AND d.next_attempt_at <= now()
      ORDER BY d.next_attempt_at
      LIMIT :per_webhook::integer
      FOR UPDATE SKIP LOCKED
    ) d
  ) r
  WHERE r.n <= r.free
  ORDER BY r.n
  LIMIT :limit::integer
)
UPDATE webhook_deliveries d
SET state = 'sending',
  attempts = d.attempts + 1,
  next_attempt_at = now() + make_interval(secs => :lease_seconds::integer)
FROM due, webhook w
WHERE d.webhook_id = due.webhook_id AND d.event_id = due.event_id AND w.id = d.webhook_id
RETURNING d.webhook_id::text, d.event_id::text, d.event_type, d.data, d.created_at, d.attempts,
  w.url, w.secret, w.previous_secret, due.next_attempt_at AS due_at;
