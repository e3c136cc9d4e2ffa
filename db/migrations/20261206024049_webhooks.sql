-- migrate:up
-- Webhooks: endpoints an admin registers, and a transactional outbox of the events owed to them.
-- The statement that makes a change writes its events' rows (webhook_deliveries) itself, in the
-- same transaction, and only for the enabled webhooks subscribed to that event and dataset
-- (webhook_subscribers): no event for a change that rolled back, no change without its event.
-- Delivery workers in every server process send them (lib/webhooks/worker.ts) and log each
-- attempt (webhook_attempts).

-- An endpoint. `secret` is the HMAC-SHA256 signing key (the bytes behind "whsec_<base64>"): the
-- server needs it in the clear at every send, so it cannot be kept as a hash like an API key; it
-- is returned only by createWebhook and rotateWebhookSecret. After a rotation `previous_secret`
-- signs too until `previous_secret_until` (24 h), so receivers can switch keys without a gap.
-- `failing_since`: a delivery used up its retry schedule and none succeeded since.
-- `disabled_reason`: 'gone' (the receiver answered 410 Gone) or 'admin' (updateWebhook).
CREATE TABLE webhooks (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  url text NOT NULL,
  events text[] NOT NULL CHECK (cardinality(events) >= 1),
  -- Null: every dataset.
  dataset_id bigint REFERENCES datasets (id) ON DELETE CASCADE,
  description text,
  enabled boolean NOT NULL DEFAULT true,
  secret bytea NOT NULL,
  previous_secret bytea,
  previous_secret_until timestamptz,
  failing_since timestamptz,
  disabled_reason text CHECK (disabled_reason IN ('gone', 'admin')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT webhooks_disabled_reason CHECK (enabled = (disabled_reason IS NULL))
);

-- Event ids: one per event, shared by its copies for each subscribed webhook. The webhook-id
-- header is `evt_<id>`, the same on every attempt.
CREATE SEQUENCE webhook_event_ids AS bigint;

-- The outbox: one row per (webhook, event), carrying the event itself (its type, the time it
-- happened and its data; the body is {type, timestamp, data}). Written on the annotation loop's
-- hot path, so it is kept to one heap row and two index entries, and it has no foreign key: a
-- key check would take FOR KEY SHARE on the webhook's row from every concurrent submit, and
-- PostgreSQL builds a MultiXact per such check (the reason current_claims dropped its dataset
-- key). deleteWebhook deletes the rows of its webhook in the same statement.
-- state: 'pending' (due at next_attempt_at), 'sending' (a worker holds it until next_attempt_at,
-- the end of its lease: past that, a crashed worker's delivery is due again), 'delivered',
-- 'failed' (the schedule ran out, or 410 Gone). attempts: attempts made since the event was
-- written or redelivered.
CREATE TABLE webhook_deliveries (
  webhook_id bigint NOT NULL,
  event_id bigint NOT NULL,
  event_type text NOT NULL,
  data jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  state text NOT NULL DEFAULT 'pending'
    CHECK (state IN ('pending', 'sending', 'delivered', 'failed')),
  attempts smallint NOT NULL DEFAULT 0,
  next_attempt_at timestamptz DEFAULT now(),
  PRIMARY KEY (webhook_id, event_id),
  CONSTRAINT webhook_deliveries_due CHECK ((state IN ('pending', 'sending'))
    = (next_attempt_at IS NOT NULL))
);

-- What the workers take: a webhook's due rows in due order (sql/webhooks/claim_deliveries.sql).
-- Delivered and failed rows leave it, so it holds only the work still owed.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (webhook_id, next_attempt_at)
  WHERE state IN ('pending', 'sending');

-- Every attempt: what listWebhookDeliveries pages through (newest first, by id).
-- outcome: 'delivered' (2xx), 'retrying' (failed; next_attempt_at says when), 'failed' (failed,
-- and it was the schedule's last attempt), 'gone' (410: the webhook was disabled).
CREATE TABLE webhook_attempts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  webhook_id bigint NOT NULL,
  event_id bigint NOT NULL,
  attempt smallint NOT NULL,
  attempted_at timestamptz NOT NULL,
  status_code smallint,
  latency_ms integer NOT NULL,
  error text,
  outcome text NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed', 'gone')),
  next_attempt_at timestamptz
);
CREATE INDEX webhook_attempts_webhook_id_id_idx ON webhook_attempts (webhook_id, id);

-- The enabled webhooks subscribed to `event_type` for dataset `dataset_id` (those of every
-- dataset included). Each statement that reports an event joins it, so with no subscriber it
-- writes nothing and the event costs this one scan: webhooks holds a row per endpoint (a page),
-- and none at all reads no page. A single SELECT, so PostgreSQL inlines it into the caller.
CREATE FUNCTION webhook_subscribers(event_type text, dataset_id bigint)
RETURNS TABLE (webhook_id bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT w.id
  FROM webhooks w
  WHERE w.enabled AND webhook_subscribers.event_type = ANY (w.events)
    AND (w.dataset_id IS NULL OR w.dataset_id = webhook_subscribers.dataset_id)
$$;

-- A time as the API writes it (JavaScript's toISOString: UTC, milliseconds, Z).
CREATE FUNCTION webhook_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- An annotation in an event's data: the fields the API's Annotation has, in its shape.
CREATE FUNCTION webhook_annotation(id bigint, image_id bigint, dataset_id bigint, source text,
  author_id bigint, model_name text, model_version text, confidence float8, labels text[],
  shapes jsonb, created_at timestamptz)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT jsonb_build_object(
    'id', id::text, 'image_id', image_id::text, 'dataset_id', dataset_id::text,
    'source', source, 'author_id', author_id::text,
    'model', CASE WHEN model_name IS NOT NULL
      THEN jsonb_build_object('name', model_name, 'version', model_version) END,
    'confidence', confidence, 'labels', to_jsonb(labels), 'shapes', shapes,
    'created_at', webhook_time(created_at)
  )
$$;

-- An image in an event's data: what a pipeline needs to fetch it without a second call.
CREATE FUNCTION webhook_image(id bigint, dataset_id bigint, external_id text, uri text)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT jsonb_build_object('id', id::text, 'dataset_id', dataset_id::text,
    'external_id', external_id, 'uri', uri)
$$;

-- Whether dataset `dataset_id` has no image left to annotate once the images `completed` (done
-- by the calling statement) commit: dataset.completed. Two submits completing a dataset's last
-- two images at once would each see the other's image not done in their own snapshot, and
-- neither would report it; so the check holds a transaction-level advisory lock per dataset
-- (taken by the statements that complete images, only when someone subscribes to
-- dataset.completed) and runs in a snapshot of its own taken after the lock: VOLATILE, in
-- PL/pgSQL, so each query sees what committed before it, the other submit included when it held
-- the lock first. Reads images_claim_queue_idx, which holds only images not done, and stops at
-- the first. The lock serialises image completions of a subscribed dataset from this check to
-- their commit; batched submits take it once per statement.
CREATE FUNCTION dataset_completed_now(dataset_id bigint, completed bigint[]) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  -- Two keys: this lock's class, and the dataset id folded into 32 bits.
  PERFORM pg_advisory_xact_lock(72401190, (dataset_completed_now.dataset_id % 2147483647)::integer);
  RETURN NOT EXISTS (
    SELECT FROM images i
    WHERE i.dataset_id = dataset_completed_now.dataset_id AND NOT i.done
      AND i.id <> ALL (completed)
  );
END
$$;

-- migrate:down
DROP FUNCTION dataset_completed_now(bigint, bigint[]);
DROP FUNCTION webhook_image(bigint, bigint, text, text);
DROP FUNCTION webhook_annotation(bigint, bigint, bigint, text, bigint, text, text, float8, text[],
  jsonb, timestamptz);
DROP FUNCTION webhook_time(timestamptz);
DROP FUNCTION webhook_subscribers(text, bigint);
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP SEQUENCE webhook_event_ids;
DROP TABLE webhooks;
