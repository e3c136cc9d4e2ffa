-- migrate:up
-- The claims a new claim takes over (claim_next_image.sql, claim_next_images.sql): on the image
-- just leased to `taker` with `new_lease`, given its annotators, its lease list as read (`leases`)
-- and the live ones among them (`live`, live_leases), the other annotators' claims in `dataset_id`
-- that expired and whose holders, with the new lease in place, could no longer renew them
-- (has_free_slot: the renewal's own rule). Their current_claims rows, locked FOR NO KEY UPDATE
-- SKIP LOCKED: the caller holds the image row, and a claimer locks its current_claims row before
-- the image, so this lock is taken against the order and must never wait; a row its holder's
-- statement holds at this instant is left to the holder. The claims' own expiry decides
-- (current_claims.expires_at, as the claim statements test it).
CREATE FUNCTION taken_over_claims(dataset_id bigint, taker bigint, new_lease lease,
  annotators bigint[], leases lease[], live lease[], k smallint)
RETURNS TABLE (user_id bigint, claim_id bigint, image_id bigint, claimed_at timestamptz,
  expires_at timestamptz)
LANGUAGE sql VOLATILE
-- Usually none, at most the image's expired leases: planned as few, the ending statements probe
-- current_claims by key.
ROWS 1
AS $$
  SELECT c.user_id, c.claim_id, c.image_id, c.claimed_at, c.expires_at
  FROM unnest(taken_over_claims.leases) e
  JOIN current_claims c ON c.user_id = e.user_id AND c.claim_id = e.claim_id
  WHERE c.dataset_id = taken_over_claims.dataset_id AND e.user_id <> taker
    AND c.active AND c.expires_at <= now()
    AND NOT has_free_slot(taken_over_claims.annotators, live || new_lease, k, e.claim_id)
  FOR NO KEY UPDATE OF c SKIP LOCKED
$$;

-- A claim in an event's data (claim.expired): the fields the API's Claim has, in its shape.
CREATE FUNCTION webhook_claim(id bigint, dataset_id bigint, image_id bigint, user_id bigint,
  created_at timestamptz, expires_at timestamptz)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT jsonb_build_object('id', id::text, 'dataset_id', dataset_id::text,
    'image_id', image_id::text, 'user_id', user_id::text,
    'created_at', webhook_time(created_at), 'expires_at', webhook_time(expires_at))
$$;

-- The claim.expired event of a claim the calling statement ends as 'expired', as the
-- webhook_deliveries rows to insert: one event id, a row per webhook subscribed (none: no event
-- built). Both claim statements insert through it, for the caller's own claim and for those
-- taken_over_claims found.
CREATE FUNCTION claim_expired_deliveries(dataset_id bigint, claim_id bigint, image_id bigint,
  user_id bigint, created_at timestamptz, expires_at timestamptz)
RETURNS TABLE (webhook_id bigint, event_id bigint, event_type text, data jsonb)
LANGUAGE sql VOLATILE
ROWS 1
AS $$
  SELECT s.webhook_id, e.id, 'claim.expired', e.data
  FROM (
    SELECT nextval('webhook_event_ids') AS id,
      jsonb_build_object('claim', webhook_claim(claim_id, dataset_id, image_id, user_id,
        created_at, expires_at)) AS data
    WHERE EXISTS (SELECT FROM webhook_subscribers('claim.expired', dataset_id))
  ) e
  CROSS JOIN webhook_subscribers('claim.expired', dataset_id) s
$$;

-- migrate:down
DROP FUNCTION claim_expired_deliveries(bigint, bigint, bigint, bigint, timestamptz, timestamptz);
DROP FUNCTION taken_over_claims(bigint, bigint, lease, bigint[], lease[], lease[], smallint);
DROP FUNCTION webhook_claim(bigint, bigint, bigint, bigint, timestamptz, timestamptz);
