-- migrate:up
-- What WEBHOOK_RETENTION_DAYS prunes (sql/webhooks/prune_webhook_history.sql): deliveries that
-- ended, oldest event first. A partial index, so the prune reads only rows it deletes, however
-- many deliveries are still owed: a webhook whose receiver is down keeps days of pending rows,
-- which a scan in event order would walk past on every run. It takes one entry per delivery, when
-- it ends (the update that ends it writes new entries anyway: it changes the due index's columns).
CREATE INDEX webhook_deliveries_ended_idx ON webhook_deliveries (created_at)
  WHERE state IN ('delivered', 'failed');

-- migrate:down
DROP INDEX webhook_deliveries_ended_idx;
