-- name: DeleteImage :execrows
-- Deletes image :id; its annotations go with it (foreign key cascade). A claim active on it ends
-- as 'released' (current_claims and ended_claims reference images without a foreign key: see
-- db/migrations/20261202021000_current_claims.sql). Ended claims stay as history. Nothing is
-- deleted when caller :caller_id (role :caller_role) may not see the image's dataset
-- (may_see_dataset).
WITH deleted AS (
  DELETE FROM images i
  USING datasets d
  WHERE i.id = :id::bigint
    AND d.id = i.dataset_id
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
  RETURNING i.id, i.dataset_id
),
freed AS (
  UPDATE current_claims c
  SET active = false
  FROM deleted d
  WHERE c.dataset_id = d.dataset_id AND c.image_id = d.id AND c.active
  RETURNING c.claim_id, c.dataset_id, c.image_id, c.user_id, c.claimed_at, c.expires_at
),
ended AS (
  INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    least(now(), expires_at), 'released'
  FROM freed
)
-- One row when the image existed (:execrows counts it).
SELECT id FROM deleted;
