-- name: ClaimNextImage :one
-- Leases the next image of dataset $1 to annotator $2, or hands back the claim $2 holds there.
--
-- Returns one row, or none when nothing is claimable for this caller right now:
--   state 'held'     the caller's live claim in this dataset, unchanged; or the caller's expired
--                    claim, renewed, when nobody has taken its slot meanwhile (the work in
--                    progress is not thrown away). Retries and double clicks never hoard images.
--   state 'new'      a new claim on the first claimable image.
--   state 'conflict' an image was picked but a concurrent claim by the same caller seated first
--                    (their first claim in the dataset, both inserting the caller's row); claim
--                    and image columns are null. Run the statement again: it answers 'held'.
-- No row also when every claimable image is locked by another statement at this instant (SKIP
-- LOCKED): the caller (routes/claims.ts) tells that apart from an empty queue with
-- find_claimable_image.sql and tries again.
--
-- Claimable: not done, not annotated by the caller, and not full: full_until (the earliest
-- expiry of the leases when they take every remaining slot, else null) is null or past. Taken
-- highest priority first, then oldest (lowest id).
--
-- WHY the claim state lives on the image row. Two annotators claiming at once must never both
-- take the last slot of an image. The scan locks image rows FOR NO KEY UPDATE SKIP LOCKED under
-- READ COMMITTED: a row another claimer holds is skipped; a row another transaction changed and
-- committed after this statement's snapshot is locked in its newest version and the WHERE clause
-- is evaluated again against that version (EvalPlanQual). That re-check sees only the locked
-- row's own columns (a subquery over another table would still read the old snapshot, and a
-- claim committed a moment ago would be invisible), so every fact the test needs is on the image
-- row: done, annotators, leases and full_until. An expired lease stops counting when its expiry
-- passes, with no background job; expired entries are pruned whenever the row is written.
-- current_claims holds the caller's claim, one row per (caller, dataset); locking that row
-- first serialises one caller's claims, and every statement that touches a claim locks its
-- current_claims row before its image row (no deadlocks).
--
-- Shape (one statement, evaluated in this order):
--   lease_commit  this statement's transaction commits without waiting for the WAL flush (is_local:
--                 the setting ends with it). A lease lost in a database crash only returns its
--                 image to the queue (the holder's submit is then refused as for an expired
--                 claim), and the submit that completes a claim commits synchronously.
--   ds            the dataset's claim TTL. k (annotations_per_image) is read from the image row,
--                 where it is current (db/migrations/20261202022000_images_annotations_per_image).
--   desk          the caller's current_claims row, locked.
--   revived       the caller's claim has expired but is still active: renew it when its slot is
--                 free (not done, and the annotations plus other live leases leave room).
--   picked        MATERIALIZED, so LIMIT 1 is honoured: walks images_claim_queue_idx
--                 (dataset_id, priority DESC, id) WHERE NOT done, exactly the ORDER BY, so no Sort
--                 node, and the scan stops at the first claimable row it can lock. It runs only
--                 when the caller holds no live claim and none was revived (one-time filters,
--                 evaluated before the scan). The filter sits inside the locked subquery, so a row
--                 failing it is never locked and a row skipped because it is locked is never
--                 returned. FOR NO KEY UPDATE, not FOR UPDATE: the annotation insert of a submit
--                 takes FOR KEY SHARE on the image through its foreign key. It steps over images
--                 whose every slot is leased (at most one per annotator at the head of the queue)
--                 by reading full_until, without unnesting their leases.
--   fresh         the new claim's id and expiry.
--   reseated /    the caller's row takes the new claim: rewritten in place (a HOT update) or, on
--   seated        a first claim in the dataset, inserted; ON CONFLICT DO NOTHING against a
--                 concurrent first claim by the same caller ('conflict').
--   lapsed        the caller's replaced expired claim enters ended_claims as 'expired'.
--   leased        appends the lease to the picked (and locked) image, pruning expired ones, and
--                 sets full_until. No indexed column changes: on a page with room (fillfactor
--                 85) this is a HOT update.
--   claimed       'held' or 'new' with the image as it is now, its status, and its latest
--                 machine annotation per model, so a claim is one round trip.
--
-- Measured (bench/experiments/sql_concurrent.ts: 32 annotators, pool of 10, 100,000 images,
-- embedded PostgreSQL 18 on 2 CPUs): PostgreSQL CPU per claim + submit cycle 2.3 ms with the
-- claims table this replaced, 1.8 ms now (the naive cycle of bench/naive_cycle.sql: 1.3 ms).
WITH lease_commit AS MATERIALIZED (
  SELECT set_config('synchronous_commit', 'off', true) AS value
),
ds AS MATERIALIZED (
  SELECT claim_ttl_seconds AS ttl
  FROM datasets
  WHERE id = $1::bigint AND (SELECT value FROM lease_commit) IS NOT NULL
),
desk AS MATERIALIZED (
  SELECT claim_id, image_id, claimed_at, expires_at, active, active AND expires_at > now() AS live
  FROM current_claims
  WHERE user_id = $2::bigint AND dataset_id = $1::bigint AND EXISTS (SELECT FROM ds)
  FOR NO KEY UPDATE
),
revived AS (
  UPDATE images i
  SET leases = live_leases(i.leases, d.claim_id)
      || ROW(d.claim_id, $2::bigint, now() + make_interval(secs => ds.ttl))::lease,
    full_until = lease_full_until(
      cardinality(i.annotators),
      live_leases(i.leases, d.claim_id)
        || ROW(d.claim_id, $2::bigint, now() + make_interval(secs => ds.ttl))::lease,
      i.annotations_per_image
    )
  FROM desk d CROSS JOIN ds
  WHERE d.active AND NOT d.live
    AND i.id = d.image_id
    AND NOT i.done
    AND NOT ($2::bigint = ANY (i.annotators))
    AND cardinality(i.annotators) + cardinality(live_leases(i.leases, d.claim_id))
      < i.annotations_per_image
  RETURNING i.id, i.full_until, now() + make_interval(secs => ds.ttl) AS expires_at
),
rearmed AS (
  UPDATE current_claims c
  SET expires_at = r.expires_at
  FROM revived r
  WHERE c.user_id = $2::bigint AND c.dataset_id = $1::bigint
  RETURNING c.claim_id
),
picked AS MATERIALIZED (
  SELECT i.id, cardinality(i.annotators) AS annotated, live_leases(i.leases, NULL) AS live,
    i.annotations_per_image AS k
  FROM images i
  WHERE NOT EXISTS (SELECT FROM desk WHERE live)
    AND NOT EXISTS (SELECT FROM rearmed)
    AND EXISTS (SELECT FROM ds)
    AND i.dataset_id = $1::bigint
    AND NOT i.done
    AND (i.full_until IS NULL OR i.full_until <= now())
    AND NOT ($2::bigint = ANY (i.annotators))
  ORDER BY i.priority DESC, i.id
  LIMIT 1
  FOR NO KEY UPDATE SKIP LOCKED
),
fresh AS MATERIALIZED (
  SELECT p.id AS image_id, nextval('claim_ids') AS claim_id, now() AS claimed_at,
    now() + make_interval(secs => ds.ttl) AS expires_at
  FROM picked p CROSS JOIN ds
),
reseated AS (
  UPDATE current_claims c
  SET claim_id = f.claim_id, image_id = f.image_id, claimed_at = f.claimed_at,
    expires_at = f.expires_at, active = true
  FROM fresh f
  WHERE c.user_id = $2::bigint AND c.dataset_id = $1::bigint
  RETURNING c.claim_id
),
seated AS (
  INSERT INTO current_claims (user_id, dataset_id, claim_id, image_id, claimed_at, expires_at,
    active)
  SELECT $2::bigint, $1::bigint, f.claim_id, f.image_id, f.claimed_at, f.expires_at, true
  FROM fresh f
  WHERE NOT EXISTS (SELECT FROM desk)
  ON CONFLICT (user_id, dataset_id) DO NOTHING
  RETURNING claim_id
),
lapsed AS (
  -- ended_at: when the claim stopped holding its slot, its expiry, not this moment.
  INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT d.claim_id, $1::bigint, d.image_id, $2::bigint, d.claimed_at, d.expires_at,
    d.expires_at, 'expired'
  FROM desk d
  WHERE d.active AND EXISTS (SELECT FROM reseated)
),
taken AS MATERIALIZED (
  SELECT f.image_id, f.claim_id, f.claimed_at, f.expires_at
  FROM fresh f
  WHERE EXISTS (SELECT FROM reseated) OR EXISTS (SELECT FROM seated)
),
leased AS (
  UPDATE images i
  SET leases = p.live || ROW(t.claim_id, $2::bigint, t.expires_at)::lease,
    full_until = lease_full_until(
      p.annotated, p.live || ROW(t.claim_id, $2::bigint, t.expires_at)::lease, p.k
    )
  FROM taken t CROSS JOIN picked p
  WHERE i.id = t.image_id
  RETURNING i.id, i.dataset_id, i.external_id, i.uri, i.width, i.height, i.priority, i.metadata,
    i.created_at, i.done, i.full_until
),
claimed AS (
  SELECT 'held' AS state, d.claim_id, d.claimed_at,
    coalesce((SELECT expires_at FROM revived), d.expires_at) AS expires_at,
    i.id AS image_id, i.dataset_id, i.external_id, i.uri, i.width, i.height, i.priority,
    i.metadata, i.created_at, i.done,
    -- i is the image as this statement's snapshot saw it: not with the revived lease.
    CASE WHEN EXISTS (SELECT FROM revived) THEN (SELECT full_until FROM revived)
      ELSE i.full_until END AS full_until
  FROM desk d
  JOIN images i ON i.id = d.image_id
  -- The scalar subquery makes this a lookup by primary key: desk has at most one row.
  WHERE (d.live OR EXISTS (SELECT FROM rearmed)) AND i.id = (SELECT image_id FROM desk)
  UNION ALL
  SELECT 'new', t.claim_id, t.claimed_at, t.expires_at, l.id, l.dataset_id, l.external_id,
    l.uri, l.width, l.height, l.priority, l.metadata, l.created_at, l.done, l.full_until
  FROM taken t
  CROSS JOIN leased l
)
SELECT coalesce(c.state, 'conflict') AS state,
  c.claim_id::text, $2::bigint::text AS user_id, c.claimed_at AS claim_created_at, c.expires_at,
  c.image_id::text AS id, c.dataset_id::text, c.external_id, c.uri, c.width, c.height,
  c.priority, c.metadata,
  CASE
    WHEN c.state IS NULL THEN NULL
    WHEN c.done THEN 'done'
    -- Every remaining slot under a live lease (the caller's included).
    WHEN c.full_until > now() THEN 'in_progress'
    ELSE 'pending'
  END AS status,
  c.created_at,
  -- The image's latest machine annotation per model name (the highest id wins, whatever the
  -- version), by model name, to pre-fill the editor without a second round trip; it reads
  -- annotations_image_id_id_idx. Null for 'conflict'.
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
FROM picked p
FULL JOIN claimed c ON true;
