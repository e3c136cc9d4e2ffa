-- name: FindReviewableImage :one
-- Whether dataset :dataset_id has an image reviewer :user_id could review, locks ignored:
-- claim_next_review.sql's filter on images_review_queue_idx without SKIP LOCKED. When the claim
-- found nothing, this tells a review queue that is really empty (204) from one whose images were
-- only locked at that instant (claim again). False when the caller (role :caller_role) may not
-- see the dataset.
SELECT EXISTS (
  SELECT FROM images i
  WHERE i.dataset_id = :dataset_id::bigint
    AND i.review = 'waiting'
    AND (i.review_lease IS NULL OR (i.review_lease).expires_at <= now())
    AND NOT (:user_id::bigint = ANY (i.annotators))
    AND EXISTS (
      SELECT FROM datasets d
      WHERE d.id = :dataset_id::bigint
        AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :user_id::bigint,
          :caller_role::text))
    )
) AS reviewable;
