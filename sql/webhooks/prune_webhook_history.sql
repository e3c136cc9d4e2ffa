-- name: PruneWebhookHistory :one
-- Deletes what WEBHOOK_RETENTION_DAYS no longer keeps, at most :limit rows of each table a call
-- (the worker calls again while a call deletes its limit): deliveries that ended (delivered or
-- failed) of events made more than :retention_days days ago, with their event, and attempts made
-- before then. A delivery still owed (pending or being sent) is kept whatever its age. Rows
-- another worker is deleting are skipped (SKIP LOCKED), so the replicas' workers can prune at once.
--
-- Each delete finds its rows by their ctid, taken (and locked) by the subquery: a TID scan, where
-- a join on the key would read the whole table once the batch is large against it.
WITH deliveries_deleted AS (
  DELETE FROM webhook_deliveries d
  WHERE d.ctid = ANY (ARRAY(
    -- webhook_deliveries_ended_idx, oldest first.
    SELECT e.ctid
    FROM webhook_deliveries e
    WHERE e.state IN ('delivered', 'failed')
      AND e.created_at < now() - make_interval(days => :retention_days::integer)
    ORDER BY e.created_at
    LIMIT :limit::integer
    FOR UPDATE SKIP LOCKED
  ))
  RETURNING d.event_id
),
attempts_deleted AS (
  DELETE FROM webhook_attempts a
  WHERE a.ctid = ANY (ARRAY(
    -- The oldest by id, which follows attempted_at to within a send's timeout (an attempt is
    -- logged when it ends): no index on attempted_at is needed, and one logged late goes in a
    -- later call.
    SELECT o.ctid
    FROM webhook_attempts o
    ORDER BY o.id
    LIMIT :limit::integer
    FOR UPDATE SKIP LOCKED
  ))
    AND a.attempted_at < now() - make_interval(days => :retention_days::integer)
  RETURNING a.id
)
SELECT (SELECT count(*) FROM deliveries_deleted)::integer AS deliveries,
  (SELECT count(*) FROM attempts_deleted)::integer AS attempts;
