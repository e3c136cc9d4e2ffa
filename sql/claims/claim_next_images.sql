-- name: ClaimNextImages :many
-- claim_next_image.sql for several callers of dataset $1 at once ($2: their user ids, distinct),
-- in one statement and one commit: the server gathers the claims that arrive while earlier ones
-- run (lib/db/batcher.ts). It covers the common cases and hands the others back, one row per
-- caller, in state:
--   'held'   the caller's live claim in this dataset, unchanged.
--   'new'    a new claim on a claimable image.
--   'single' not decided here: run claim_next_image.sql for this caller. The caller's claim has
--            expired but is still active (revival, or its end as 'expired'); a concurrent first
--            claim by the same caller seated first; or fewer images could be locked than callers
--            wanted one.
-- The locking is claim_next_image.sql's (read its WHY): the callers' current_claims rows first,
-- in user order, so two batches holding some of the same callers never deadlock; then images
-- with FOR NO KEY UPDATE SKIP LOCKED, which never waits. Every fact the claimable test needs is
-- on the image row, re-checked on its newest version; an image goes to at most one caller of the
-- batch, and only an image none of the batch's callers has annotated is taken, so any image
-- picked is claimable by any caller who wants one (with annotations_per_image 1, annotators is
-- empty on every image not done).
WITH lease_commit AS MATERIALIZED (
  -- As in claim_next_image.sql: a lease lost in a crash only returns its image to the queue.
  SELECT set_config('synchronous_commit', 'off', true) AS value
),
ds AS MATERIALIZED (
  SELECT claim_ttl_seconds AS ttl
  FROM datasets
  WHERE id = $1::bigint AND (SELECT value FROM lease_commit) IS NOT NULL
),
desk AS MATERIALIZED (
  SELECT c.user_id, c.claim_id, c.image_id, c.claimed_at, c.expires_at, c.active,
    c.active AND c.expires_at > now() AS live
  FROM current_claims c
  WHERE c.user_id = ANY ($2::bigint[]) AND c.dataset_id = $1::bigint AND EXISTS (SELECT FROM ds)
  -- Locked in this order (LockRows sits above the sort).
  ORDER BY c.user_id
  FOR NO KEY UPDATE
),
wanting AS MATERIALIZED (
  -- Callers with no claim in the dataset yet, or none active: they get a new one.
  SELECT u.user_id, row_number() OVER (ORDER BY u.user_id) AS n
  FROM unnest($2::bigint[]) AS u (user_id)
  WHERE EXISTS (SELECT FROM ds)
    AND NOT EXISTS (SELECT FROM desk d WHERE d.user_id = u.user_id AND d.active)
),
picked AS MATERIALIZED (
  -- claim_next_image.sql's scan (images_claim_queue_idx, exactly the ORDER BY, no Sort) for as
  -- many rows as callers want; the LIMIT is an InitPlan, evaluated before the scan.
  SELECT i.id, cardinality(i.annotators) AS annotated, live_leases(i.leases, NULL) AS live,
    i.annotations_per_image AS k
  FROM images i
  WHERE i.dataset_id = $1::bigint
    AND NOT i.done
    AND (i.full_until IS NULL OR i.full_until <= now())
    AND NOT (i.annotators && $2::bigint[])
  ORDER BY i.priority DESC, i.id
  LIMIT (SELECT count(*) FROM wanting)
  FOR NO KEY UPDATE SKIP LOCKED
),
fresh AS MATERIALIZED (
  -- The n-th image picked goes to the n-th caller wanting one. Claimed when granted: the clock
  -- now, after the locks, not now() (this transaction's start). The statement may have waited
  -- for any of its callers' current_claims rows (their submit or renew on another server),
  -- and a claim dated before it held its slot would overlap the one whose slot it took.
  SELECT w.user_id, p.id AS image_id, p.annotated, p.live, p.k, nextval('claim_ids') AS claim_id,
    g.at AS claimed_at, g.at + make_interval(secs => ds.ttl) AS expires_at
  FROM (SELECT picked.*, row_number() OVER () AS n FROM picked) p
  JOIN wanting w ON w.n = p.n
  CROSS JOIN ds
  CROSS JOIN (SELECT clock_timestamp() AS at) g
),
reseated AS (
  UPDATE current_claims c
  SET claim_id = f.claim_id, image_id = f.image_id, claimed_at = f.claimed_at,
    expires_at = f.expires_at, active = true
  FROM fresh f
  WHERE c.user_id = f.user_id AND c.dataset_id = $1::bigint
  RETURNING c.user_id
),
seated AS (
  INSERT INTO current_claims (user_id, dataset_id, claim_id, image_id, claimed_at, expires_at,
    active)
  SELECT f.user_id, $1::bigint, f.claim_id, f.image_id, f.claimed_at, f.expires_at, true
  FROM fresh f
  WHERE NOT EXISTS (SELECT FROM desk d WHERE d.user_id = f.user_id)
  -- Inserted in user order, like the locks above: two batches seating the same callers wait for
  -- each other in one order.
  ORDER BY f.user_id
  ON CONFLICT (user_id, dataset_id) DO NOTHING
  RETURNING user_id
),
taken AS MATERIALIZED (
  SELECT f.user_id, f.image_id, f.claim_id, f.claimed_at, f.expires_at, f.annotated, f.live, f.k
  FROM fresh f
  WHERE f.user_id IN (SELECT user_id FROM reseated UNION ALL SELECT user_id FROM seated)
),
leased AS (
  UPDATE images i
  SET leases = t.live || ROW(t.claim_id, t.user_id, t.expires_at)::lease,
    full_until = lease_full_until(
      t.annotated, t.live || ROW(t.claim_id, t.user_id, t.expires_at)::lease, t.k
    )
  FROM taken t
  WHERE i.id = t.image_id
  RETURNING i.id, i.dataset_id, i.external_id, i.uri, i.width, i.height, i.priority, i.metadata,
    i.created_at, i.done, i.full_until
),
claimed AS (
  SELECT 'held' AS state, d.user_id, d.claim_id, d.claimed_at, d.expires_at, i.id AS image_id,
    i.dataset_id, i.external_id, i.uri, i.width, i.height, i.priority, i.metadata, i.created_at,
    i.done, i.full_until
  FROM desk d
  JOIN images i ON i.id = d.image_id
  WHERE d.live
  UNION ALL
  SELECT 'new', t.user_id, t.claim_id, t.claimed_at, t.expires_at, l.id, l.dataset_id,
    l.external_id, l.uri, l.width, l.height, l.priority, l.metadata, l.created_at, l.done,
    l.full_until
  FROM taken t
  JOIN leased l ON l.id = t.image_id
)
SELECT coalesce(c.state, 'single') AS state, u.user_id::text AS user_id,
  c.claim_id::text, c.claimed_at AS claim_created_at, c.expires_at,
  c.image_id::text AS id, c.dataset_id::text, c.external_id, c.uri, c.width, c.height,
  c.priority, c.metadata,
  CASE
    WHEN c.state IS NULL THEN NULL
    WHEN c.done THEN 'done'
    WHEN c.full_until > now() THEN 'in_progress'
    ELSE 'pending'
  END AS status,
  c.created_at,
  -- As in claim_next_image.sql: the latest machine annotation per model, by model name.
  CASE WHEN c.state IS NOT NULL THEN (
    SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.model_name), '[]'::jsonb)
    FROM (
      SELECT DISTINCT ON (a.model_name)
        a.id::text, a.image_id::text, a.dataset_id::text, a.source, a.author_id::text,
        a.model_name, a.model_version, a.confidence, a.labels, a.shapes, a.created_at
      FROM annotations a
      WHERE a.image_id = c.image_id AND a.source = 'machine'
      ORDER BY a.model_name, a.id DESC
    ) p
  ) END AS predictions
FROM unnest($2::bigint[]) AS u (user_id)
LEFT JOIN claimed c ON c.user_id = u.user_id;
