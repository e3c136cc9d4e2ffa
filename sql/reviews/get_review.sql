-- name: GetReview :one
-- Review lease :id as it stands, live or ended (current_reviews, then ended_reviews), for
-- diagnosing a refused submit, renew or release. None when the caller :caller_id (role
-- :caller_role) may not see its dataset. current_reviews has no index on review_id (its rows are
-- rewritten by every review claim): this reads it whole, one row per reviewer and dataset.
SELECT r.id::text, r.dataset_id::text, r.image_id::text, r.user_id::text, r.created_at,
  r.expires_at, r.active, r.end_reason, r.decision, r.active AND r.expires_at > now() AS live
FROM (
  SELECT c.review_id AS id, c.dataset_id, c.image_id, c.user_id, c.claimed_at AS created_at,
    c.expires_at, true AS active, NULL::text AS end_reason, NULL::text AS decision
  FROM current_reviews c
  WHERE c.review_id = :id::bigint AND c.active
  UNION ALL
  SELECT e.review_id, e.dataset_id, e.image_id, e.user_id, e.claimed_at, e.expires_at, false,
    e.end_reason, e.decision
  FROM ended_reviews e
  WHERE e.review_id = :id::bigint
) r
JOIN datasets d ON d.id = r.dataset_id
WHERE EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
LIMIT 1;
