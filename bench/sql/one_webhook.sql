-- One enabled webhook subscribed to annotation.created for every dataset, for measuring the
-- outbox insert on the submit path (bench/experiments/sql_concurrent.ts --setup): nothing sends
-- its deliveries there, so the figure is the statements' cost alone. `deno task bench --webhook`
-- measures the whole server with a receiver instead.
INSERT INTO webhooks (url, events, secret)
VALUES ('http://127.0.0.1:9/hook', '{annotation.created}', '\x00'::bytea);
