-- name: RevokeClaims :one
-- Ends, as 'revoked', the active claims in dataset :dataset_id whose holders may no longer see it
-- (may_see_dataset with the holder's role), or only user :user_id's when it is not null, and
-- frees their slots at once: each lease leaves its image row (expired ones are pruned too) and
-- full_until follows. Run after a change that can take the dataset away from someone, in the
-- same transaction and as a statement of its own, so it reads the change: removeDatasetMember
-- (remove_dataset_member.sql) and updateDataset to access 'members' (update_dataset.sql). Caller
-- :caller_id (role :caller_role) must see the dataset. Answers how many claims it ended.
--
-- Locks as create_human_annotations.sql does: the holders' current_claims rows in user order,
-- then their images in id order (several revoked claims can share an image when k > 1), so it
-- never deadlocks with a claim, a submit or a batch of them. A claim statement that read the
-- membership before the change committed can still grant a lease after this has run; that lease
-- cannot be renewed or submitted with (both statements apply may_see_dataset) and frees its slot
-- when it expires, after at most the dataset's claim_ttl_seconds.
--
-- current_claims has no index on dataset_id (its key leads with user_id): taking a whole dataset
-- away reads the table whole, one row per annotator and dataset. An admin's action, not a hot path.
WITH revoked AS MATERIALIZED (
  SELECT c.user_id, c.claim_id, c.image_id, c.claimed_at, c.expires_at
  FROM current_claims c
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
per_image AS (
  SELECT r.image_id, array_agg(r.claim_id) AS claim_ids
  FROM revoked r
  GROUP BY r.image_id
),
image_unleased AS (
  UPDATE images i
  SET leases = ARRAY(
      SELECT l FROM unnest(live_leases(i.leases, NULL)) l WHERE l.claim_id <> ALL (p.claim_ids)
    ),
    full_until = lease_full_until(
      cardinality(i.annotators),
      ARRAY(
        SELECT l FROM unnest(live_leases(i.leases, NULL)) l WHERE l.claim_id <> ALL (p.claim_ids)
      ),
      i.annotations_per_image
    )
  FROM per_image p
  WHERE i.id = p.image_id
    AND (SELECT count(*) FROM locked_images) > 0
),
claim_ended AS (
  INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT r.claim_id, :dataset_id::bigint, r.image_id, r.user_id, r.claimed_at, r.expires_at,
    least(now(), r.expires_at), 'revoked'
  FROM revoked r
),
claim_row_ended AS (
  UPDATE current_claims c
  SET active = false
  FROM revoked r
  WHERE c.user_id = r.user_id AND c.dataset_id = :dataset_id::bigint
)
SELECT count(*)::integer AS revoked FROM revoked;
