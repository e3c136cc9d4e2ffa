-- name: ClaimNextReview :one
-- Leases the next image of dataset :dataset_id waiting for review to reviewer :user_id (role
-- :caller_role), or hands back the review lease the caller holds there. claim_next_image.sql's
-- design, for the review queue (read its header for why the state lives on the image row, the
-- EvalPlanQual re-check, and the lock order: the caller's current_reviews row, then the image).
--
-- Returns one row, or none when nothing is reviewable for this caller right now:
--   state 'held'     the caller's live review in this dataset, unchanged.
--   state 'new'      a new review lease on the first reviewable image. A review of the caller's
--                    that had expired ends as 'expired' first (ended_reviews).
--   state 'conflict' a concurrent first review by the same caller inserted its current_reviews
--                    row first; run the statement again (it answers 'held').
-- No row also when every reviewable image is locked at this instant (SKIP LOCKED): the caller
-- tells that from an empty queue with find_reviewable_image.sql. And none when the caller may
-- not see the dataset (may_see_dataset, once, on the dataset row): as for no dataset.
--
-- Reviewable: waiting for review (review = 'waiting'), its review lease absent or expired, and
-- not annotated by the caller (a reviewer never reviews their own work). Taken highest priority
-- first, then the oldest to enter review: images_review_queue_idx (dataset_id, priority DESC,
-- review_since, id) WHERE review = 'waiting' is exactly that ORDER BY, so the scan needs no sort
-- and stops at the first row it can lock (MATERIALIZED: LIMIT 1 honoured; the filter inside the
-- locked subquery, so a row failing it is never locked; FOR NO KEY UPDATE: the fix's annotation
-- insert takes FOR KEY SHARE on the image through its foreign key).
--
-- The answer carries the image's current human annotations with their authors' names, read by
-- review_annotations() with a fresh snapshot after the image row is locked (an amendment that
-- committed while this statement waited for the row is what the reviewer sees and what a submit
-- acts on), and its latest predictions. The lease commits without waiting for the WAL flush, as
-- a claim does: one lost in a crash only returns the image to the queue.
WITH async_commit AS MATERIALIZED (
  SELECT set_config('synchronous_commit', 'off', true) AS value
),
dataset AS MATERIALIZED (
  SELECT d.claim_ttl_seconds AS ttl
  FROM datasets d
  WHERE d.id = :dataset_id::bigint AND (SELECT value FROM async_commit) IS NOT NULL
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :user_id::bigint, :caller_role::text))
),
caller_review AS MATERIALIZED (
  SELECT claim_id AS review_id, image_id, claimed_at, expires_at, active,
    active AND expires_at > now() AS live
  FROM current_reviews
  WHERE user_id = :user_id::bigint AND dataset_id = :dataset_id::bigint
    AND EXISTS (SELECT FROM dataset)
  FOR NO KEY UPDATE
),
next_image AS MATERIALIZED (
  SELECT i.id
  FROM images i
  WHERE NOT EXISTS (SELECT FROM caller_review WHERE live)
    AND EXISTS (SELECT FROM dataset)
    AND i.dataset_id = :dataset_id::bigint
    AND i.review = 'waiting'
    AND (i.review_lease IS NULL OR (i.review_lease).expires_at <= now())
    AND NOT (:user_id::bigint = ANY (i.annotators))
  ORDER BY i.priority DESC, i.review_since, i.id
  LIMIT 1
  FOR NO KEY UPDATE SKIP LOCKED
),
new_review AS MATERIALIZED (
  -- Dated when granted, as claim_next_image.sql's new_claim (which says why).
  SELECT g.image_id, g.review_id, g.at AS claimed_at, g.at + make_interval(secs => d.ttl)
    AS expires_at
  FROM (
    SELECT n.id AS image_id, nextval('review_ids') AS review_id, clock_timestamp() AS at
    FROM next_image n
  ) g
  CROSS JOIN dataset d
),
review_row_updated AS (
  UPDATE current_reviews c
  SET claim_id = n.review_id, image_id = n.image_id, claimed_at = n.claimed_at,
    expires_at = n.expires_at, active = true
  FROM new_review n
  WHERE c.user_id = :user_id::bigint AND c.dataset_id = :dataset_id::bigint
  RETURNING c.claim_id
),
review_row_inserted AS (
  INSERT INTO current_reviews (user_id, dataset_id, claim_id, image_id, claimed_at, expires_at,
    active)
  SELECT :user_id::bigint, :dataset_id::bigint, n.review_id, n.image_id, n.claimed_at,
    n.expires_at, true
  FROM new_review n
  WHERE NOT EXISTS (SELECT FROM caller_review)
  ON CONFLICT (user_id, dataset_id) DO NOTHING
  RETURNING claim_id
),
expired_review_ended AS (
  -- The caller's expired review, replaced: ended at its expiry.
  INSERT INTO ended_reviews (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT c.review_id, :dataset_id::bigint, c.image_id, :user_id::bigint, c.claimed_at,
    c.expires_at, c.expires_at, 'expired'
  FROM caller_review c
  WHERE c.active AND EXISTS (SELECT FROM review_row_updated)
),
granted AS MATERIALIZED (
  SELECT n.image_id, n.review_id, n.claimed_at, n.expires_at
  FROM new_review n
  WHERE EXISTS (SELECT FROM review_row_updated) OR EXISTS (SELECT FROM review_row_inserted)
),
image_leased AS (
  -- review_lease is in no index: a HOT update on a page with room.
  UPDATE images i
  SET review_lease = ROW(g.review_id, :user_id::bigint, g.expires_at)::lease
  FROM granted g
  WHERE i.id = g.image_id
  RETURNING i.id, i.dataset_id, i.external_id, i.uri, i.width, i.height, i.priority, i.metadata,
    i.created_at, i.done, i.full_until, i.review
),
answer AS MATERIALIZED (
  SELECT 'held' AS state, c.review_id, c.claimed_at, c.expires_at, i.id AS image_id,
    i.dataset_id, i.external_id, i.uri, i.width, i.height, i.priority, i.metadata, i.created_at,
    i.done, i.full_until, i.review
  FROM caller_review c
  JOIN images i ON i.id = c.image_id
  WHERE c.live AND i.id = (SELECT image_id FROM caller_review)
  UNION ALL
  SELECT 'new', g.review_id, g.claimed_at, g.expires_at, l.id, l.dataset_id, l.external_id,
    l.uri, l.width, l.height, l.priority, l.metadata, l.created_at, l.done, l.full_until,
    l.review
  FROM granted g
  CROSS JOIN image_leased l
)
SELECT coalesce(a.state, 'conflict') AS state,
  a.review_id::text, :user_id::bigint::text AS user_id, a.claimed_at AS review_created_at,
  a.expires_at, a.image_id::text AS id, a.dataset_id::text, a.external_id, a.uri, a.width,
  a.height, a.priority, a.metadata, image_status(a.done, a.full_until, a.review) AS status,
  a.created_at,
  -- Null for 'conflict'.
  CASE WHEN a.state IS NOT NULL THEN review_annotations(a.image_id) END AS annotations,
  CASE WHEN a.state IS NOT NULL THEN p.predictions END AS predictions
FROM next_image n
FULL JOIN answer a ON true
LEFT JOIN LATERAL latest_predictions(a.image_id) p ON true;
