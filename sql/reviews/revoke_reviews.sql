-- name: RevokeReviews :one
-- Ends, as 'revoked', the active review leases in dataset :dataset_id whose reviewers may no
-- longer see it (may_see_dataset with the reviewer's role), or only user :user_id's when it is not
-- null, and gives their images back to the review queue at once (each image's review_lease is
-- cleared if it is still that review's). revoke_claims.sql's twin, run right after it in the same
-- transaction, for the same changes (removeDatasetMember, updateDataset to access 'members').
-- Caller :caller_id (role :caller_role) must see the dataset. Answers how many reviews it ended.
--
-- Locks as the review statements do: the reviewers' current_reviews rows in user order, then
-- their images in id order. A review claim that read the membership before the change committed
-- can still lease an image after this has run; nobody can renew or submit with that lease (both
-- statements apply may_see_dataset) and the image is free again when it expires.
WITH revoked AS MATERIALIZED (
  SELECT c.user_id, c.review_id, c.image_id, c.claimed_at, c.expires_at
  FROM current_reviews c
  JOIN datasets d ON d.id = c.dataset_id
  JOIN users u ON u.id = c.user_id
  WHERE c.dataset_id = :dataset_id::bigint
    AND (:user_id::bigint IS NULL OR c.user_id = :user_id::bigint)
    AND c.active
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
    AND NOT EXISTS (SELECT FROM may_see_dataset(d.id, d.access, u.id, u.role))
  ORDER BY c.user_id
  FOR NO KEY UPDATE OF c
),
locked_images AS MATERIALIZED (
  SELECT i.id
  FROM images i
  WHERE i.id IN (SELECT image_id FROM revoked)
  ORDER BY i.id
  FOR NO KEY UPDATE
),
image_unleased AS (
  UPDATE images i
  SET review_lease = NULL
  FROM revoked r
  WHERE i.id = r.image_id AND (i.review_lease).claim_id = r.review_id
    AND (SELECT count(*) FROM locked_images) > 0
),
review_ended AS (
  INSERT INTO ended_reviews (review_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT r.review_id, :dataset_id::bigint, r.image_id, r.user_id, r.claimed_at, r.expires_at,
    least(now(), r.expires_at), 'revoked'
  FROM revoked r
),
review_row_ended AS (
  UPDATE current_reviews c
  SET active = false
  FROM revoked r
  WHERE c.user_id = r.user_id AND c.dataset_id = :dataset_id::bigint
)
SELECT count(*)::integer AS revoked FROM revoked;
