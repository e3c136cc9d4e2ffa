-- name: RenewReview :one
-- Extends reviewer :user_id's active review :review_id to the dataset's claim_ttl_seconds from now,
-- while the image is still theirs: its review_lease is this review's (live, or expired with nobody
-- else having taken the image since: another review would have replaced the lease) and it still
-- waits for review. Locks the caller's current_reviews row, then the image row, as every review
-- statement. Answers the image's URI too (fresh media). No row: no such active review of this
-- user, the image was taken by another reviewer after the lease expired, or the caller (role
-- :caller_role) may no longer see the dataset.
WITH caller_review AS MATERIALIZED (
  SELECT c.dataset_id, c.review_id, c.image_id,
    now() + make_interval(secs => d.claim_ttl_seconds) AS new_expires_at
  FROM current_reviews c
  JOIN datasets d ON d.id = c.dataset_id
  WHERE c.user_id = :user_id::bigint AND c.review_id = :review_id::bigint AND c.active
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :user_id::bigint, :caller_role::text))
  FOR NO KEY UPDATE OF c
),
image_leased AS (
  UPDATE images i
  SET review_lease = ROW(c.review_id, :user_id::bigint, c.new_expires_at)::lease
  FROM caller_review c
  WHERE i.id = c.image_id AND i.review = 'waiting' AND (i.review_lease).claim_id = c.review_id
  RETURNING i.id, i.uri
)
UPDATE current_reviews cr
SET expires_at = c.new_expires_at
FROM caller_review c
WHERE cr.user_id = :user_id::bigint AND cr.dataset_id = c.dataset_id
  AND EXISTS (SELECT FROM image_leased)
RETURNING cr.review_id::text AS id, cr.dataset_id::text, cr.image_id::text, cr.user_id::text,
  cr.claimed_at AS created_at, cr.expires_at, cr.active, NULL::text AS end_reason,
  NULL::text AS decision, true AS live, (SELECT uri FROM image_leased) AS image_uri;
