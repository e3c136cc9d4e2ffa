-- name: ClaimNextImages :many
-- claim_next_image.sql for several callers of dataset :dataset_id at once (:user_ids, distinct,
-- with their roles at the same positions in :user_roles), in one statement and one commit: the
-- server gathers the claims that arrive while earlier ones run (lib/db/batcher.ts). It decides
-- the common cases and hands the others back, one row per caller, in state:
--   'held'   the caller's live claim in this dataset, unchanged.
--   'new'    a new claim on a claimable image.
--   'single' not decided here: run claim_next_image.sql for this caller. The caller's claim has
--            expired but is still active (renewal, or its end as 'expired'); a concurrent first
--            claim by the same caller inserted first; fewer images could be locked than
--            callers wanted one; a reviewer sent an image back for the caller's rework (the
--            single statement hands it to them first); or the caller may not see the dataset
--            (may_see_dataset, tested once per caller in `visible`), which the single statement
--            answers as no dataset; or (:after_claim_ids) the caller's submitted claim did not end
--            'completed'.
-- The locking is claim_next_image.sql's (read its reasons): the callers' current_claims rows
-- first, in user order, so two batches holding some of the same callers never deadlock; then
-- images with FOR NO KEY UPDATE SKIP LOCKED, which never waits. An image goes to at most one
-- caller of the batch, and only an image none of the batch's callers has annotated or skipped is
-- taken, so any image picked is claimable by any caller who wants one. Other annotators' expired
-- claims whose slot a granted image's new claim takes end here as 'expired' (taken_over).
-- CTE names are claim_next_image.sql's.
WITH async_commit AS MATERIALIZED (
  -- As in claim_next_image.sql: a lease lost in a crash only returns its image to the queue.
  SELECT set_config('synchronous_commit', 'off', true) AS value
),
dataset AS MATERIALIZED (
  SELECT d.id, d.access, d.claim_ttl_seconds AS ttl
  FROM datasets d
  WHERE d.id = :dataset_id::bigint AND (SELECT value FROM async_commit) IS NOT NULL
),
visible AS MATERIALIZED (
  -- The callers who may see the dataset: only they are answered or given an image here. With
  -- :after_claim_ids (null, or one claim id per caller at the caller's position), only those
  -- callers whose claim of that id ended 'completed': the claim sent right behind a submit on
  -- the same connection (createAnnotation with `next`) is made only once that submit has
  -- completed the claim; the others are left 'single' and nothing is written for them.
  SELECT u.user_id
  FROM dataset d
  CROSS JOIN unnest(:user_ids::bigint[], :user_roles::text[], :after_claim_ids::bigint[])
    AS u (user_id, role, after_claim_id)
  WHERE EXISTS (SELECT FROM may_see_dataset(d.id, d.access, u.user_id, u.role))
    AND (u.after_claim_id IS NULL OR EXISTS (
      SELECT FROM ended_claims e
      WHERE e.claim_id = u.after_claim_id AND e.user_id = u.user_id
        AND e.end_reason = 'completed'
    ))
),
caller_claim AS MATERIALIZED (
  SELECT c.user_id, c.claim_id, c.image_id, c.claimed_at, c.expires_at, c.active,
    c.active AND c.expires_at > now() AS live
  FROM current_claims c
  WHERE c.user_id = ANY (:user_ids::bigint[]) AND c.dataset_id = :dataset_id::bigint
    AND EXISTS (SELECT FROM dataset)
  -- Locked in this order (LockRows sits above the sort).
  ORDER BY c.user_id
  FOR NO KEY UPDATE
),
rework_caller AS MATERIALIZED (
  -- Callers for whom an image awaits rework (claim_next_image.sql's rework rule): left to the
  -- single statement, which hands it to them first. One probe of images_rework_idx (GIN on
  -- rework_for: && finds the callers' own) per batch.
  SELECT DISTINCT u.user_id
  FROM images i
  CROSS JOIN LATERAL unnest(i.rework_for) AS u (user_id)
  WHERE i.dataset_id = :dataset_id::bigint
    AND i.rework_until > now()
    AND i.rework_for && :user_ids::bigint[]
    AND NOT i.done
    AND u.user_id = ANY (:user_ids::bigint[])
),
wanting AS MATERIALIZED (
  -- Callers with no claim in the dataset yet, or none active: they get a new one (but those with
  -- rework waiting: rework_caller).
  SELECT u.user_id, row_number() OVER (ORDER BY u.user_id) AS n
  FROM unnest(:user_ids::bigint[]) AS u (user_id)
  WHERE u.user_id IN (SELECT user_id FROM visible)
    AND NOT EXISTS (SELECT FROM caller_claim c WHERE c.user_id = u.user_id AND c.active)
    AND NOT EXISTS (SELECT FROM rework_caller r WHERE r.user_id = u.user_id)
),
next_image AS MATERIALIZED (
  -- claim_next_image.sql's scan for as many rows as callers want; the LIMIT is an InitPlan,
  -- evaluated before the scan.
  SELECT i.id, cardinality(i.annotators) AS annotated, live_leases(i.leases, NULL) AS live,
    i.annotations_per_image AS k, i.annotators, i.leases
  FROM images i
  WHERE i.dataset_id = :dataset_id::bigint
    AND NOT i.done
    AND (i.full_until IS NULL OR i.full_until <= now())
    AND NOT (i.annotators && :user_ids::bigint[])
    AND (i.skipped_by && :user_ids::bigint[]) IS NOT TRUE
    AND (i.rework_until IS NULL OR i.rework_until <= now())
  ORDER BY i.priority DESC, i.id
  LIMIT (SELECT count(*) FROM wanting)
  FOR NO KEY UPDATE SKIP LOCKED
),
new_claim AS MATERIALIZED (
  -- The n-th image picked goes to the n-th caller wanting one, dated when granted: the clock as
  -- its locked row comes out of next_image, as in claim_next_image.sql (which says why).
  SELECT w.user_id, n.id AS image_id, n.annotated, n.live, n.k, n.annotators, n.leases,
    nextval('claim_ids') AS claim_id, n.at AS claimed_at,
    n.at + make_interval(secs => d.ttl) AS expires_at
  FROM (
    SELECT next_image.id, next_image.annotated, next_image.live, next_image.k,
      next_image.annotators, next_image.leases, row_number() OVER () AS n,
      clock_timestamp() AS at
    FROM next_image
  ) n
  JOIN wanting w ON w.n = n.n
  CROSS JOIN dataset d
),
claim_row_updated AS (
  UPDATE current_claims c
  SET claim_id = n.claim_id, image_id = n.image_id, claimed_at = n.claimed_at,
    expires_at = n.expires_at, active = true
  FROM new_claim n
  WHERE c.user_id = n.user_id AND c.dataset_id = :dataset_id::bigint
  RETURNING c.user_id
),
claim_row_inserted AS (
  INSERT INTO current_claims (user_id, dataset_id, claim_id, image_id, claimed_at, expires_at,
    active)
  SELECT n.user_id, :dataset_id::bigint, n.claim_id, n.image_id, n.claimed_at, n.expires_at, true
  FROM new_claim n
  WHERE NOT EXISTS (SELECT FROM caller_claim c WHERE c.user_id = n.user_id)
  -- Inserted in user order, like the locks above: two batches inserting the same callers wait
  -- for each other in one order.
  ORDER BY n.user_id
  ON CONFLICT (user_id, dataset_id) DO NOTHING
  RETURNING user_id
),
granted AS MATERIALIZED (
  SELECT n.user_id, n.image_id, n.claim_id, n.claimed_at, n.expires_at, n.annotated, n.live, n.k,
    n.annotators, n.leases
  FROM new_claim n
  WHERE n.user_id IN (
    SELECT user_id FROM claim_row_updated UNION ALL SELECT user_id FROM claim_row_inserted
  )
),
taken_over AS MATERIALIZED (
  -- As in claim_next_image.sql, for each image granted. A caller of this batch whose expired
  -- claim is taken over (left 'single', its row locked above) has it ended here, and its own
  -- statement then finds no active claim to end.
  SELECT t.user_id, t.claim_id, t.image_id, t.claimed_at, t.expires_at
  FROM granted g
  CROSS JOIN LATERAL (
    SELECT o.user_id, o.claim_id, o.image_id, o.claimed_at, o.expires_at
    FROM taken_over_claims(:dataset_id::bigint, g.user_id,
      ROW(g.claim_id, g.user_id, g.expires_at)::lease, g.annotators, g.leases, g.live, g.k) o
    WHERE cardinality(g.leases) > cardinality(g.live)
  ) t
),
taken_over_ended AS (
  UPDATE current_claims c
  SET active = false
  FROM taken_over t
  WHERE c.user_id = t.user_id AND c.dataset_id = :dataset_id::bigint
),
expired_claim_ended AS (
  -- ended_at: when the claim stopped holding its slot, its expiry, not this moment.
  INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT t.claim_id, :dataset_id::bigint, t.image_id, t.user_id, t.claimed_at, t.expires_at,
    t.expires_at, 'expired'
  FROM taken_over t
),
claim_expired_queued AS (
  -- claim.expired for each claim ended here, for the webhooks subscribed (none: nothing built).
  INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data)
  SELECT d.webhook_id, d.event_id, d.event_type, d.data
  FROM taken_over t
  CROSS JOIN LATERAL claim_expired_deliveries(:dataset_id::bigint, t.claim_id, t.image_id,
    t.user_id, t.claimed_at, t.expires_at) d
),
image_leased AS (
  UPDATE images i
  -- As in claim_next_image.sql: expired leases stay listed only while a slot is left.
  SET leases = CASE
      WHEN cardinality(g.leases) = cardinality(g.live) THEN g.live
      WHEN has_free_slot(g.annotators, g.live || ROW(g.claim_id, g.user_id, g.expires_at)::lease,
        g.k, NULL)
      THEN kept_leases(:dataset_id::bigint, g.leases, NULL, NULL)
      ELSE g.live
    END || ROW(g.claim_id, g.user_id, g.expires_at)::lease,
    full_until = lease_full_until(
      g.annotated, g.live || ROW(g.claim_id, g.user_id, g.expires_at)::lease, g.k
    )
  FROM granted g
  WHERE i.id = g.image_id
  RETURNING i.id, i.dataset_id, i.external_id, i.uri, i.width, i.height, i.priority, i.metadata,
    i.created_at, i.done, i.full_until, i.review, i.rework_for
),
answer AS (
  SELECT 'held' AS state, c.user_id, c.claim_id, c.claimed_at, c.expires_at, i.id AS image_id,
    i.dataset_id, i.external_id, i.uri, i.width, i.height, i.priority, i.metadata, i.created_at,
    i.done, i.full_until, i.review, i.rework_for
  FROM caller_claim c
  JOIN images i ON i.id = c.image_id
  WHERE c.live AND c.user_id IN (SELECT user_id FROM visible)
  UNION ALL
  SELECT 'new', g.user_id, g.claim_id, g.claimed_at, g.expires_at, l.id, l.dataset_id,
    l.external_id, l.uri, l.width, l.height, l.priority, l.metadata, l.created_at, l.done,
    l.full_until, l.review, l.rework_for
  FROM granted g
  JOIN image_leased l ON l.id = g.image_id
)
SELECT coalesce(a.state, 'single') AS state, u.user_id::text AS user_id,
  a.claim_id::text, a.claimed_at AS claim_created_at, a.expires_at,
  a.image_id::text AS id, a.dataset_id::text, a.external_id, a.uri, a.width, a.height,
  a.priority, a.metadata, image_status(a.done, a.full_until, a.review) AS status, a.created_at,
  CASE WHEN a.state IS NOT NULL THEN p.predictions END AS predictions,
  CASE WHEN cardinality(a.rework_for) > 0 THEN rework_note(a.image_id) END AS rework
FROM unnest(:user_ids::bigint[]) AS u (user_id)
LEFT JOIN answer a ON a.user_id = u.user_id
LEFT JOIN LATERAL latest_predictions(a.image_id) p ON true;
