-- name: ClaimNextImage :one
-- Leases the next image of dataset $1 to annotator $2, or hands back the lease $2 already holds.
--
-- Returns one row, or none when nothing is claimable for this caller:
--   state 'held'     the caller's live (unexpired) claim in this dataset, unchanged. Retries and
--                    double clicks therefore never hoard images.
--   state 'new'      a new claim on the first claimable image.
--   state 'conflict' an image was picked but the INSERT lost to a concurrent claim by the same
--                    caller (claims_one_active_per_user); claim and image columns are null. Run
--                    the statement again: it answers 'held' with the winner's claim.
--
-- Claimable: not done, not already annotated by the caller, and
--   cardinality(annotators) + (leases still unexpired) < the dataset's annotations_per_image (k),
-- taken highest priority first, then oldest (lowest id).
--
-- WHY the claim state lives on the image row. Two annotators claiming at once must never both
-- take the last slot of an image. The scan locks image rows with FOR NO KEY UPDATE SKIP LOCKED,
-- under READ COMMITTED: a row locked by another claimer is skipped; a row that another
-- transaction changed and committed after this statement's snapshot is locked in its newest
-- version and the WHERE clause is evaluated again against that version (EvalPlanQual). That
-- re-check only sees columns of the locked row itself: a subquery over a separate claims table
-- would still run against the statement's old snapshot, so a claim committed a moment ago would
-- be invisible and two annotators could both take the image. So every fact the test needs is on
-- the image row: `done`, `annotators` (who has annotated) and `leases` (who holds a claim, until
-- when). An expired lease is simply not counted (expires_at > now()), so it stops counting at
-- once with no background job; expired entries are pruned whenever the row is written. The claims
-- table is the durable record; its unique index is what stops one user holding two claims.
--
-- Shape (one statement, evaluated in this order):
--   ds       k and ttl, read from datasets inside the statement.
--   mine     the caller's active claim in the dataset, if any (at most one, by the unique index).
--   expired  when that claim has expired, end it ('expired') so the unique index admits a new one.
--   picked   MATERIALIZED, so LIMIT 1 is honoured: walks images_claim_queue_idx (dataset_id,
--            priority DESC, id) WHERE NOT done, which is exactly the ORDER BY, so no Sort node
--            and the scan stops at the first claimable row. The filter sits inside the locked
--            subquery, so a row failing it is never locked and a row skipped because it is
--            locked is never returned. Its gate (one-time filters, evaluated before the scan)
--            skips the scan when the caller holds a live claim, and runs `expired` first: the
--            caller's claim row is then locked before any image row, the order every other
--            claim statement uses (no deadlocks), and the slot in the unique index is free before
--            the INSERT below. FOR NO KEY UPDATE rather than FOR UPDATE: the claims and
--            annotations inserts take FOR KEY SHARE on the image through their foreign keys and
--            must not conflict with it.
--   inserted the claim; ON CONFLICT DO NOTHING against a concurrent claim by the same caller,
--            which waits for that one to commit, then yields no row ('conflict').
--   leased   appends the lease to the picked (and locked) image, pruning expired entries.
--   claimed  'held' or 'new', with the image as it is now; status is done / in_progress (every
--            remaining slot under a live lease) / pending; and the image's latest prediction per
--            model, so a claim is one round trip.
-- The final FULL JOIN ON true yields 'conflict' when an image was picked but nothing claimed.
--
-- Measured (tests/claims_sql_test.ts, embedded PostgreSQL 18 on 2 CPUs): at 100,000 images the
-- plan is Limit -> LockRows -> Result (the gate) -> Index Scan using images_claim_queue_idx, no
-- Sort, custom and generic plan alike, about 3 ms; 32 annotators on two pools drain 2,000 images
-- (k=1, claim + submit each) in 4-7 s. The scan walks past images whose slots are all leased, so
-- its cost grows with the number of live claims at the head of the queue, not with the dataset.
WITH lease_commit AS MATERIALIZED (
  -- This statement's transaction commits without waiting for the WAL flush: a lease lost in a
  -- database crash only returns its image to the queue (the holder's submit is then refused),
  -- and the submit that completes a claim commits synchronously, flushing the claim with it.
  -- is_local: the setting ends with this statement's own transaction.
  SELECT set_config('synchronous_commit', 'off', true) AS value
),
ds AS MATERIALIZED (
  SELECT annotations_per_image AS k, claim_ttl_seconds AS ttl
  FROM datasets
  WHERE id = $1::bigint AND (SELECT value FROM lease_commit) IS NOT NULL
),
mine AS MATERIALIZED (
  SELECT id, image_id, dataset_id, user_id, created_at, expires_at
  FROM claims
  WHERE dataset_id = $1::bigint AND user_id = $2::bigint AND active
),
expired AS (
  -- ended_at is when the claim stopped holding its slot: its expiry, not this moment.
  UPDATE claims
  SET active = false, ended_at = expires_at, end_reason = 'expired'
  WHERE id = (SELECT id FROM mine WHERE expires_at <= now())
    -- Re-checked on the newest row version: a concurrent renew wins, and the INSERT below then
    -- conflicts ('conflict'; the retry answers 'held').
    AND active AND expires_at <= now()
  RETURNING id
),
picked AS MATERIALIZED (
  SELECT i.id
  FROM images i
  WHERE NOT EXISTS (SELECT FROM mine WHERE expires_at > now())
    AND (SELECT count(*) FROM expired) >= 0
    AND i.dataset_id = $1::bigint
    AND NOT i.done
    AND NOT ($2::bigint = ANY (i.annotators))
    AND cardinality(i.annotators)
      + (SELECT count(*) FROM unnest(i.leases) l WHERE l.expires_at > now())
      < (SELECT k FROM ds)
  ORDER BY i.priority DESC, i.id
  LIMIT 1
  FOR NO KEY UPDATE SKIP LOCKED
),
inserted AS (
  INSERT INTO claims (dataset_id, image_id, user_id, expires_at)
  SELECT $1::bigint, picked.id, $2::bigint, now() + make_interval(secs => ds.ttl)
  FROM picked CROSS JOIN ds
  ON CONFLICT (dataset_id, user_id) WHERE active DO NOTHING
  RETURNING id, image_id, dataset_id, user_id, created_at, expires_at
),
leased AS (
  UPDATE images i
  SET leases = ARRAY(SELECT l FROM unnest(i.leases) l WHERE l.expires_at > now())
    || (SELECT ROW(c.id, c.user_id, c.expires_at)::lease FROM inserted c)
  WHERE i.id = (SELECT image_id FROM inserted)
  RETURNING i.id, i.external_id, i.uri, i.width, i.height, i.priority, i.metadata, i.created_at,
    i.done, i.annotators, i.leases
),
claimed AS (
  SELECT 'held' AS state, m.id AS claim_id, m.user_id, m.created_at AS claim_created_at,
    m.expires_at, i.id AS image_id, i.dataset_id, i.external_id, i.uri, i.width, i.height,
    i.priority, i.metadata, i.created_at, i.done, i.annotators, i.leases
  FROM mine m
  JOIN images i ON i.id = m.image_id
  -- The scalar subquery makes this a lookup by primary key (a merge join would walk images_pkey
  -- from the start: the planner knows nothing of a CTE's rows). mine has at most one row.
  WHERE m.expires_at > now() AND i.id = (SELECT image_id FROM mine)
  UNION ALL
  -- At most one row each, and leased is the image of inserted: no join condition needed.
  SELECT 'new', c.id, c.user_id, c.created_at, c.expires_at, l.id, c.dataset_id, l.external_id,
    l.uri, l.width, l.height, l.priority, l.metadata, l.created_at, l.done, l.annotators, l.leases
  FROM inserted c
  CROSS JOIN leased l
)
SELECT coalesce(c.state, 'conflict') AS state,
  c.claim_id::text, c.user_id::text, c.claim_created_at, c.expires_at,
  c.image_id::text AS id, c.dataset_id::text, c.external_id, c.uri, c.width, c.height,
  c.priority, c.metadata,
  CASE
    WHEN c.state IS NULL THEN NULL
    WHEN c.done THEN 'done'
    WHEN cardinality(c.annotators)
      + (SELECT count(*) FROM unnest(c.leases) l WHERE l.expires_at > now())
      >= (SELECT k FROM ds) THEN 'in_progress'
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
