-- name: ReleaseLease :one
-- Ends user :user_id's active lease :claim_id of kind :kind ('released') and gives its image back
-- at once:
--   annotate  the lease leaves the image row (with the expired ones of ended claims,
--             kept_leases) and full_until follows. With :skip, the holder also joins the
--             image's skipped_by: the claim statements never offer it to them again, while it
--             stays claimable for everyone else (written here because this statement already
--             rewrites the image row, where the claim statements look: read
--             claim_next_image.sql's header).
--   review    the image's review_lease is cleared if it is still this review's; the image is
--             back in the review queue.
--
-- Locks the user's current_leases row (found by user_id, the first column of its partition's
-- primary key) before the image row, like every lease statement. No row: no such active lease of
-- this user. (An admin releasing another user's lease finds its holder first, with
-- get_lease.sql.) No row also when caller :caller_id (role :caller_role: the holder, or that
-- admin) may not see the lease's dataset (may_see_dataset).
WITH caller_lease AS MATERIALIZED (
  SELECT c.kind, c.dataset_id, c.claim_id, c.image_id, c.claimed_at, c.expires_at
  FROM current_leases c
  JOIN datasets d ON d.id = c.dataset_id
  WHERE c.kind = :kind::text AND c.user_id = :user_id::bigint AND c.claim_id = :claim_id::bigint
    AND c.active
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
  FOR NO KEY UPDATE OF c
),
image_unleased AS (
  UPDATE images i
  SET leases = CASE c.kind
      WHEN 'annotate' THEN kept_leases(i.dataset_id, i.leases, c.claim_id, NULL)
      ELSE i.leases
    END,
    full_until = CASE c.kind
      WHEN 'annotate' THEN lease_full_until(
        cardinality(i.annotators), live_leases(i.leases, c.claim_id), i.annotations_per_image
      )
      ELSE i.full_until
    END,
    skipped_by = CASE
      WHEN c.kind = 'annotate' AND :skip::boolean
        AND (:user_id::bigint = ANY (i.skipped_by)) IS NOT TRUE
        THEN coalesce(i.skipped_by, '{}') || :user_id::bigint
      ELSE i.skipped_by
    END,
    review_lease = CASE c.kind WHEN 'review' THEN NULL ELSE i.review_lease END
  FROM caller_lease c
  WHERE i.id = c.image_id
    AND (c.kind = 'annotate' OR (i.review_lease).claim_id = c.claim_id)
),
lease_ended AS (
  INSERT INTO ended_leases (kind, claim_id, dataset_id, image_id, user_id, claimed_at,
    expires_at, ended_at, end_reason)
  SELECT c.kind, c.claim_id, c.dataset_id, c.image_id, :user_id::bigint, c.claimed_at,
    c.expires_at, least(now(), c.expires_at), 'released'
  FROM caller_lease c
)
UPDATE current_leases cl
SET active = false
FROM caller_lease c
WHERE cl.kind = :kind::text AND cl.user_id = :user_id::bigint AND cl.dataset_id = c.dataset_id
RETURNING cl.claim_id::text AS id, cl.dataset_id::text, cl.image_id::text, cl.user_id::text,
  cl.claimed_at AS created_at, cl.expires_at, false AS active, 'released' AS end_reason,
  NULL::text AS decision, false AS live;
