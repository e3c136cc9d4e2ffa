-- name: ClaimNextImage :one
-- Leases the next image of dataset :dataset_id to annotator :user_id, or hands back the claim the
-- caller holds there.
--
-- The caller is :user_id, with role :caller_role: a dataset it may not see (may_see_dataset,
-- tested once, on the dataset row) is one that does not exist, and every step below needs the
-- dataset.
--
-- Returns one row, or none when nothing is claimable for this caller right now:
--   state 'held'     the caller's live claim in this dataset, unchanged; or the caller's expired
--                    claim, renewed, when nobody has taken its slot meanwhile (the work in
--                    progress is not thrown away). Retries and double clicks never hoard images.
--   state 'new'      a new claim on the first claimable image.
--   state 'conflict' an image was picked but a concurrent first claim by the same caller in
--                    this dataset inserted the caller's current_claims row first; claim and
--                    image columns are null. Run the statement again: it answers 'held'.
-- No row also when every claimable image is locked by another statement at this instant (SKIP
-- LOCKED): the caller tells that apart from an empty queue with find_claimable_image.sql.
--
-- Claimable: not done, not annotated by the caller, not skipped by the caller (releaseClaim with
-- ?skip=true), not full (full_until null or past), and not reserved for other annotators'
-- rework (rework_until ahead). Taken highest priority first, then oldest (lowest id); but first
-- an image a reviewer sent back for the caller's own rework (rework_for, while rework_until is
-- ahead), whatever its priority.
--
-- Why the claim state lives on the image row: two annotators claiming at once must never both
-- take the last slot of an image. The scan locks image rows FOR NO KEY UPDATE SKIP LOCKED under
-- READ COMMITTED: a row another claimer holds is skipped; a row another transaction changed and
-- committed after this statement's snapshot is locked in its newest version and the WHERE clause
-- is evaluated again against that version (EvalPlanQual). That re-check sees only the locked
-- row's own columns (a subquery over another table would still read the old snapshot), so every
-- fact the test needs is on the image row: done, annotators, skipped_by, leases, full_until and
-- k. An expired lease stops counting when its expiry passes, with no background job; expired
-- entries are pruned whenever the row is written. Lock order, in every statement that touches a
-- claim: the caller's current_claims row, then the image row (no deadlocks); locking the caller's
-- row first also serialises one caller's claims.
--
-- In order:
--   async_commit   this transaction commits without waiting for the WAL flush (is_local: the
--                  setting ends with it). A lease lost in a database crash only returns its image
--                  to the queue; the submit that completes a claim commits synchronously.
--   dataset        the dataset's claim_ttl_seconds, when the caller may see it.
--   caller_claim   the caller's current_claims row, locked.
--   renewed_lease  the caller's claim has expired but is still active: renew it while its slot is
--                  free; renewed_claim moves its expiry.
--   rework_image   the rework rule: one probe of images_rework_idx, GIN on rework_for WHERE
--                  rework_until IS NOT NULL (only rejected images awaiting rework), for the
--                  caller's own, of which the dataset's, highest priority first (a sort of those
--                  few); locked as queue_image locks. Its cost does not grow with other
--                  annotators' pending rework (the migration says why not a btree).
--   queue_image    when there is none (a one-time filter), MATERIALIZED, so LIMIT 1 is honoured:
--                  walks images_claim_queue_idx
--                  (dataset_id, priority DESC, id) WHERE NOT done, exactly the ORDER BY (no Sort),
--                  and stops at the first claimable row it can lock. Runs only when the caller
--                  holds no live claim (one-time filters, evaluated before the scan). The filter
--                  sits inside the locked subquery, so a row failing it is never locked. FOR NO KEY
--                  UPDATE, not FOR UPDATE: a submit's annotation insert takes FOR KEY SHARE on the
--                  image through its foreign key. full_until lets it step over fully leased images
--                  without unnesting their leases.
--   next_image     the one image picked: rework_image's or queue_image's.
--   new_claim      the new claim's id, start and expiry.
--   claim_row_updated / claim_row_inserted
--                  the caller's current_claims row takes the new claim: rewritten in place (a HOT
--                  update) or, on a first claim in the dataset, inserted; ON CONFLICT DO NOTHING
--                  against a concurrent first claim by the same caller ('conflict').
--   granted        the new claim, once the caller's current_claims row holds it.
--   taken_over     other annotators' expired claims whose slot on the image the new claim takes;
--                  taken_over_ended ends them in current_claims.
--   expired_claim  the claims ended as 'expired': the caller's replaced one and taken_over's;
--                  expired_claim_ended enters them in ended_claims, and claim_expired_queued
--                  writes their claim.expired events (claim_expired_deliveries).
--   image_leased   appends the lease to the locked image, keeping the live ones and, while a
--                  slot is left, the expired ones of claims still active (kept_leases), and sets
--                  full_until. No indexed column changes: on a page with room (fillfactor 85)
--                  this is a HOT update.
--   answer         'held' or 'new' with the image as it is now and its latest prediction per
--                  model (latest_predictions), so a claim is one round trip; for an image sent
--                  back by a reviewer, the reviewer's note (rework_note).
--
-- Cost: 1.8 ms of PostgreSQL CPU per claim + submit cycle, one at a time (32 annotators, pool
-- of 10, 100,000 images, PostgreSQL 18 on 2 CPUs), against 1.3 ms for the naive cycle of
-- bench/naive_cycle.sql; batched (claim_next_images.sql) much less (docs/decisions).
WITH async_commit AS MATERIALIZED (
  SELECT set_config('synchronous_commit', 'off', true) AS value
),
dataset AS MATERIALIZED (
  SELECT d.claim_ttl_seconds AS ttl
  FROM datasets d
  WHERE d.id = :dataset_id::bigint AND (SELECT value FROM async_commit) IS NOT NULL
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :user_id::bigint, :caller_role::text))
),
caller_claim AS MATERIALIZED (
  SELECT claim_id, image_id, claimed_at, expires_at, active, active AND expires_at > now() AS live
  FROM current_claims
  WHERE user_id = :user_id::bigint AND dataset_id = :dataset_id::bigint
    AND EXISTS (SELECT FROM dataset)
  FOR NO KEY UPDATE
),
renewed_lease AS (
  UPDATE images i
  SET leases = kept_leases(:dataset_id::bigint, i.leases, c.claim_id, NULL)
      || ROW(c.claim_id, :user_id::bigint, now() + make_interval(secs => d.ttl))::lease,
    full_until = lease_full_until(
      cardinality(i.annotators),
      live_leases(i.leases, c.claim_id)
        || ROW(c.claim_id, :user_id::bigint, now() + make_interval(secs => d.ttl))::lease,
      i.annotations_per_image
    )
  FROM caller_claim c CROSS JOIN dataset d
  WHERE c.active AND NOT c.live
    AND i.id = c.image_id
    AND NOT i.done
    AND NOT (:user_id::bigint = ANY (i.annotators))
    AND has_free_slot(i.annotators, i.leases, i.annotations_per_image, c.claim_id)
  RETURNING i.id, i.full_until, now() + make_interval(secs => d.ttl) AS expires_at
),
renewed_claim AS (
  UPDATE current_claims c
  SET expires_at = r.expires_at
  FROM renewed_lease r
  WHERE c.user_id = :user_id::bigint AND c.dataset_id = :dataset_id::bigint
  RETURNING c.claim_id
),
rework_image AS MATERIALIZED (
  -- An image a reviewer sent back for the caller's rework, still reserved for them: one probe of
  -- images_rework_idx for the caller (@>, the operator its GIN answers).
  SELECT i.id, cardinality(i.annotators) AS annotated, live_leases(i.leases, NULL) AS live,
    i.annotations_per_image AS k, i.annotators, i.leases
  FROM images i
  WHERE NOT EXISTS (SELECT FROM caller_claim WHERE live)
    AND NOT EXISTS (SELECT FROM renewed_claim)
    AND EXISTS (SELECT FROM dataset)
    AND i.dataset_id = :dataset_id::bigint
    AND i.rework_until > now()
    AND i.rework_for @> ARRAY[:user_id::bigint]
    AND NOT i.done
    AND (i.full_until IS NULL OR i.full_until <= now())
    AND NOT (:user_id::bigint = ANY (i.annotators))
    AND (:user_id::bigint = ANY (i.skipped_by)) IS NOT TRUE
  ORDER BY i.priority DESC, i.id
  LIMIT 1
  FOR NO KEY UPDATE SKIP LOCKED
),
queue_image AS MATERIALIZED (
  SELECT i.id, cardinality(i.annotators) AS annotated, live_leases(i.leases, NULL) AS live,
    i.annotations_per_image AS k, i.annotators, i.leases
  FROM images i
  WHERE NOT EXISTS (SELECT FROM caller_claim WHERE live)
    AND NOT EXISTS (SELECT FROM renewed_claim)
    AND NOT EXISTS (SELECT FROM rework_image)
    AND EXISTS (SELECT FROM dataset)
    AND i.dataset_id = :dataset_id::bigint
    AND NOT i.done
    AND (i.full_until IS NULL OR i.full_until <= now())
    AND NOT (:user_id::bigint = ANY (i.annotators))
    AND (:user_id::bigint = ANY (i.skipped_by)) IS NOT TRUE
    -- Not reserved for other annotators' rework (rework_until ahead).
    AND (i.rework_until IS NULL OR i.rework_until <= now())
  ORDER BY i.priority DESC, i.id
  LIMIT 1
  FOR NO KEY UPDATE SKIP LOCKED
),
next_image AS MATERIALIZED (
  SELECT id, annotated, live, k, annotators, leases FROM rework_image
  UNION ALL
  SELECT id, annotated, live, k, annotators, leases FROM queue_image
),
new_claim AS MATERIALIZED (
  -- Dated when granted: the clock as the locked image row comes out of next_image, not now()
  -- (this transaction's start). The statement may have waited for the caller's current_claims
  -- row (their submit or release on another server), and a claim dated before it held its slot
  -- would overlap, in the claims' history, the one whose slot it took. Computed per row of
  -- next_image (`granted_at`), so no join order can evaluate it before the lock.
  SELECT g.image_id, g.claim_id, g.at AS claimed_at, g.at + make_interval(secs => d.ttl)
    AS expires_at
  FROM (
    SELECT n.id AS image_id, nextval('claim_ids') AS claim_id, clock_timestamp() AS at
    FROM next_image n
  ) g
  CROSS JOIN dataset d
),
claim_row_updated AS (
  UPDATE current_claims c
  SET claim_id = n.claim_id, image_id = n.image_id, claimed_at = n.claimed_at,
    expires_at = n.expires_at, active = true
  FROM new_claim n
  WHERE c.user_id = :user_id::bigint AND c.dataset_id = :dataset_id::bigint
  RETURNING c.claim_id
),
claim_row_inserted AS (
  INSERT INTO current_claims (user_id, dataset_id, claim_id, image_id, claimed_at, expires_at,
    active)
  SELECT :user_id::bigint, :dataset_id::bigint, n.claim_id, n.image_id, n.claimed_at,
    n.expires_at, true
  FROM new_claim n
  WHERE NOT EXISTS (SELECT FROM caller_claim)
  ON CONFLICT (user_id, dataset_id) DO NOTHING
  RETURNING claim_id
),
granted AS MATERIALIZED (
  SELECT n.image_id, n.claim_id, n.claimed_at, n.expires_at
  FROM new_claim n
  WHERE EXISTS (SELECT FROM claim_row_updated) OR EXISTS (SELECT FROM claim_row_inserted)
),
taken_over AS MATERIALIZED (
  -- Other annotators' expired claims whose slot on the image the new claim takes
  -- (taken_over_claims): they end here, found expired by the claim that took their slot, so
  -- claim.expired does not wait for a holder who may never come back. Looked for only when the
  -- image's lease list held an expired lease (one the live list lacks).
  SELECT t.user_id, t.claim_id, t.image_id, t.claimed_at, t.expires_at
  FROM granted g
  JOIN next_image n ON n.id = g.image_id
  CROSS JOIN LATERAL (
    SELECT o.user_id, o.claim_id, o.image_id, o.claimed_at, o.expires_at
    FROM taken_over_claims(:dataset_id::bigint, :user_id::bigint,
      ROW(g.claim_id, :user_id::bigint, g.expires_at)::lease, n.annotators, n.leases, n.live,
      n.k) o
    WHERE cardinality(n.leases) > cardinality(n.live)
  ) t
),
taken_over_ended AS (
  UPDATE current_claims c
  SET active = false
  FROM taken_over t
  WHERE c.user_id = t.user_id AND c.dataset_id = :dataset_id::bigint
),
expired_claim AS MATERIALIZED (
  -- The claims this statement ends as 'expired': the caller's own, replaced by its new claim,
  -- and taken_over's.
  SELECT c.claim_id, c.image_id, :user_id::bigint AS user_id, c.claimed_at, c.expires_at
  FROM caller_claim c
  WHERE c.active AND EXISTS (SELECT FROM claim_row_updated)
  UNION ALL
  SELECT t.claim_id, t.image_id, t.user_id, t.claimed_at, t.expires_at
  FROM taken_over t
),
expired_claim_ended AS (
  -- ended_at: when the claim stopped holding its slot, its expiry, not this moment.
  INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT e.claim_id, :dataset_id::bigint, e.image_id, e.user_id, e.claimed_at, e.expires_at,
    e.expires_at, 'expired'
  FROM expired_claim e
),
claim_expired_queued AS (
  -- claim.expired for each claim ended here, for the webhooks subscribed (none: nothing built).
  INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data)
  SELECT d.webhook_id, d.event_id, d.event_type, d.data
  FROM expired_claim e
  CROSS JOIN LATERAL claim_expired_deliveries(:dataset_id::bigint, e.claim_id, e.image_id,
    e.user_id, e.claimed_at, e.expires_at) d
),
image_leased AS (
  UPDATE images i
  -- With a slot left, nothing was taken over: the expired leases of claims still active stay
  -- listed. With none, no expired lease keeps one: all leave the list, also those taken_over
  -- could not lock, so their holder's statement under way (its now() from before the expiry)
  -- cannot count its lease as live.
  SET leases = CASE
      -- No expired lease listed (the common case): nothing to decide.
      WHEN cardinality(n.leases) = cardinality(n.live) THEN n.live
      WHEN has_free_slot(n.annotators,
        n.live || ROW(g.claim_id, :user_id::bigint, g.expires_at)::lease, n.k, NULL)
      THEN kept_leases(:dataset_id::bigint, n.leases, NULL, NULL)
      ELSE n.live
    END || ROW(g.claim_id, :user_id::bigint, g.expires_at)::lease,
    full_until = lease_full_until(
      n.annotated, n.live || ROW(g.claim_id, :user_id::bigint, g.expires_at)::lease, n.k
    )
  FROM granted g CROSS JOIN next_image n
  WHERE i.id = g.image_id
  RETURNING i.id, i.dataset_id, i.external_id, i.uri, i.width, i.height, i.priority, i.metadata,
    i.created_at, i.done, i.full_until, i.review, i.rework_for
),
answer AS (
  SELECT 'held' AS state, c.claim_id, c.claimed_at,
    coalesce((SELECT expires_at FROM renewed_lease), c.expires_at) AS expires_at,
    i.id AS image_id, i.dataset_id, i.external_id, i.uri, i.width, i.height, i.priority,
    i.metadata, i.created_at, i.done, i.review, i.rework_for,
    -- i is the image as this statement's snapshot saw it: not with the renewed lease.
    CASE WHEN EXISTS (SELECT FROM renewed_lease) THEN (SELECT full_until FROM renewed_lease)
      ELSE i.full_until END AS full_until
  FROM caller_claim c
  JOIN images i ON i.id = c.image_id
  -- The scalar subquery makes this a lookup by primary key: caller_claim has at most one row.
  WHERE (c.live OR EXISTS (SELECT FROM renewed_claim))
    AND i.id = (SELECT image_id FROM caller_claim)
  UNION ALL
  SELECT 'new', g.claim_id, g.claimed_at, g.expires_at, l.id, l.dataset_id, l.external_id,
    l.uri, l.width, l.height, l.priority, l.metadata, l.created_at, l.done, l.review,
    l.rework_for, l.full_until
  FROM granted g
  CROSS JOIN image_leased l
)
SELECT coalesce(a.state, 'conflict') AS state,
  a.claim_id::text, :user_id::bigint::text AS user_id, a.claimed_at AS claim_created_at,
  a.expires_at, a.image_id::text AS id, a.dataset_id::text, a.external_id, a.uri, a.width,
  a.height, a.priority, a.metadata, image_status(a.done, a.full_until, a.review) AS status,
  a.created_at,
  -- Null for 'conflict'.
  CASE WHEN a.state IS NOT NULL THEN p.predictions END AS predictions,
  -- The reviewer's note when the image was sent back for rework (read only then).
  CASE WHEN cardinality(a.rework_for) > 0 THEN rework_note(a.image_id) END AS rework
FROM next_image n
FULL JOIN answer a ON true
LEFT JOIN LATERAL latest_predictions(a.image_id) p ON true;
