-- name: FindClaimableImage :one
-- Whether dataset :dataset_id has an image user :user_id could claim, locks ignored: the claim
-- statement's filter on images_claim_queue_idx, without FOR UPDATE SKIP LOCKED, and false when the
-- user (role :caller_role) may not see the dataset (may_see_dataset, an InitPlan: tested once).
-- claim_next_image.sql skips rows other statements hold locked at that instant (claims and submits
-- in flight, a setPriorities batch); when it finds nothing, this tells a queue that is really empty
-- (204) from one that is only busy (claim again).
SELECT EXISTS (
  SELECT FROM images i
  WHERE i.dataset_id = :dataset_id::bigint
    AND NOT i.done
    AND (i.full_until IS NULL OR i.full_until <= now())
    AND NOT (:user_id::bigint = ANY (i.annotators))
    AND (:user_id::bigint = ANY (i.skipped_by)) IS NOT TRUE
    AND EXISTS (
      SELECT FROM datasets d
      WHERE d.id = :dataset_id::bigint
        AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :user_id::bigint,
          :caller_role::text))
    )
    -- Free, or reserved for the caller's own rework.
    AND (i.rework_until IS NULL OR i.rework_until <= now() OR :user_id::bigint = ANY (i.rework_for))
) AS claimable;
