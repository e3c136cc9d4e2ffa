-- name: RotateWebhookSecret :one
-- Gives webhook :id the new signing key :secret; the current one keeps signing beside it for
-- :overlap_seconds (both signatures in the header), so receivers can switch without refusing a
-- delivery. A second rotation within that time drops the oldest key. No row: no such webhook.
UPDATE webhooks
SET previous_secret = secret,
  previous_secret_until = now() + make_interval(secs => :overlap_seconds::integer),
  secret = :secret::bytea,
  updated_at = now()
WHERE id = :id::bigint
RETURNING id::text, url, events, dataset_id::text, description, enabled, disabled_reason,
  failing_since, previous_secret_until, created_at, updated_at;
