-- name: UpdateWebhook :one
-- Changes webhook :id's url, events, description and enabled where given (a null leaves one as it
-- is; :set_description says whether :description, which may be null, is given). Enabling clears
-- the reason it was disabled and its failing mark, so a receiver that is back starts afresh;
-- disabling records 'admin'. No row: no such webhook.
UPDATE webhooks w
SET url = coalesce(:url::text, w.url),
  events = coalesce(:events::text[], w.events),
  description = CASE WHEN :set_description::boolean THEN :description::text ELSE w.description END,
  enabled = coalesce(:enabled::boolean, w.enabled),
  disabled_reason = CASE
    WHEN :enabled::boolean IS NULL THEN w.disabled_reason
    WHEN :enabled::boolean THEN NULL
    ELSE coalesce(w.disabled_reason, 'admin')
  END,
  failing_since = CASE WHEN :enabled::boolean THEN NULL ELSE w.failing_since END,
  updated_at = now()
WHERE w.id = :id::bigint
RETURNING id::text, url, events, dataset_id::text, description, enabled, disabled_reason,
  failing_since, CASE WHEN previous_secret_until > now() THEN previous_secret_until END
    AS previous_secret_until, created_at, updated_at;
