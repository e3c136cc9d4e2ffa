-- name: RevokeLeases :one
-- Ends, as 'revoked', the active leases of both kinds in dataset :dataset_id whose holders may no
-- longer see it (may_see_dataset with the holder's role), or only user :user_id's when it is not
-- null, and gives their images back at once: a claim's lease leaves its image row (with the
-- expired ones of ended claims, kept_leases) and full_until follows; a review's review_lease is
-- cleared if it is still that review's. Run after a change that can take the dataset away from
-- someone, in the same transaction and as a statement of its own, so it reads the change:
-- removeDatasetMember (remove_dataset_member.sql) and updateDataset to access 'members'
-- (update_dataset.sql). Caller :caller_id (role :caller_role) must see the dataset. Answers how
-- many leases it ended.
--
-- Locks as the lease statements do: the holders' current_leases rows (claims, then reviews, each
-- in user order), then their images in id order (several revoked leases can share an image when
-- k > 1), so it never deadlocks with a claim, a submit, a review or a batch of them. A claim or
-- review statement that read the membership before the change committed can still grant a lease
-- after this has run; that lease cannot be renewed or submitted with (both statements apply
-- may_see_dataset) and frees its image when it expires, after at most the dataset's
-- claim_ttl_seconds.
--
-- current_leases has no index on dataset_id (its partitions' keys lead with user_id): taking a
-- whole dataset away reads both partitions whole, one row per holder, dataset and kind. An
-- admin's action, not a hot path.
WITH revoked AS MATERIALIZED (
  SELECT c.kind, c.user_id, c.claim_id, c.image_id, c.claimed_at, c.expires_at
  FROM current_leases c
  JOIN datasets d ON d.id = c.dataset_id
  JOIN users u ON u.id = c.user_id
  WHERE c.dataset_id = :dataset_id::bigint
    AND (:user_id::bigint IS NULL OR c.user_id = :user_id::bigint)
    AND c.active
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
    AND NOT EXISTS (SELECT FROM may_see_dataset(d.id, d.access, u.id, u.role))
  ORDER BY c.kind, c.user_id
  FOR NO KEY UPDATE OF c
),
locked_images AS MATERIALIZED (
  SELECT i.id
  FROM images i
  WHERE i.id IN (SELECT image_id FROM revoked)
  ORDER BY i.id
  FOR NO KEY UPDATE
),
per_image AS (
  SELECT r.image_id,
    array_agg(r.claim_id) FILTER (WHERE r.kind = 'annotate') AS claim_ids,
    array_agg(r.claim_id) FILTER (WHERE r.kind = 'review') AS review_ids
  FROM revoked r
  GROUP BY r.image_id
),
image_unleased AS (
  -- One update per image, whichever kinds of lease it loses (an array of a kind it loses none
  -- of is null).
  UPDATE images i
  SET leases = CASE
      WHEN p.claim_ids IS NULL THEN i.leases
      ELSE kept_leases(i.dataset_id, i.leases, NULL, p.claim_ids)
    END,
    full_until = CASE
      WHEN p.claim_ids IS NULL THEN i.full_until
      ELSE lease_full_until(
        cardinality(i.annotators),
        ARRAY(
          SELECT l FROM unnest(live_leases(i.leases, NULL)) l WHERE l.claim_id <> ALL (p.claim_ids)
        ),
        i.annotations_per_image
      )
    END,
    review_lease = CASE
      WHEN (i.review_lease).claim_id = ANY (p.review_ids) THEN NULL
      ELSE i.review_lease
    END
  FROM per_image p
  WHERE i.id = p.image_id
    AND (SELECT count(*) FROM locked_images) > 0
),
lease_ended AS (
  INSERT INTO ended_leases (kind, claim_id, dataset_id, image_id, user_id, claimed_at,
    expires_at, ended_at, end_reason)
  SELECT r.kind, r.claim_id, :dataset_id::bigint, r.image_id, r.user_id, r.claimed_at,
    r.expires_at, least(now(), r.expires_at), 'revoked'
  FROM revoked r
),
lease_row_ended AS (
  UPDATE current_leases c
  SET active = false
  FROM revoked r
  WHERE c.kind = r.kind AND c.user_id = r.user_id AND c.dataset_id = :dataset_id::bigint
)
SELECT count(*)::integer AS revoked FROM revoked;
