-- name: ReleaseReview :one
-- Ends reviewer :user_id's active review :review_id ('released') and gives the image back to the
-- review queue at once: its review_lease is cleared if it is still this review's. Locks the
-- holder's current_reviews row, then the image row. No row: no such active review of this user,
-- or the caller :caller_id (role :caller_role; an admin may release another reviewer's review,
-- passing its holder as :user_id) may not see the dataset.
WITH caller_review AS MATERIALIZED (
  SELECT c.dataset_id, c.review_id, c.image_id, c.claimed_at, c.expires_at
  FROM current_reviews c
  JOIN datasets d ON d.id = c.dataset_id
  WHERE c.user_id = :user_id::bigint AND c.review_id = :review_id::bigint AND c.active
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
  FOR NO KEY UPDATE OF c
),
image_unleased AS (
  UPDATE images i
  SET review_lease = NULL
  FROM caller_review c
  WHERE i.id = c.image_id AND (i.review_lease).claim_id = c.review_id
),
review_ended AS (
  INSERT INTO ended_reviews (review_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT c.review_id, c.dataset_id, c.image_id, :user_id::bigint, c.claimed_at, c.expires_at,
    least(now(), c.expires_at), 'released'
  FROM caller_review c
)
UPDATE current_reviews cr
SET active = false
FROM caller_review c
WHERE cr.user_id = :user_id::bigint AND cr.dataset_id = c.dataset_id
RETURNING cr.review_id::text AS id, cr.dataset_id::text, cr.image_id::text, cr.user_id::text,
  cr.claimed_at AS created_at, cr.expires_at, false AS active, 'released' AS end_reason,
  NULL::text AS decision, false AS live;
