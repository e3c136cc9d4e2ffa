-- name: RenewClaim :one
-- Extends active claim $1 of user $2 to now() + the dataset's claim_ttl_seconds, on the claim and
-- on its lease in the image row. An unexpired claim is always renewed. An expired one only while
-- its slot is still free, by the rule submitting uses (create_human_annotation.sql): the caller
-- has not annotated the image, and its human annotations plus the other live leases stay below
-- annotations_per_image. Its lease is re-added when a writer has pruned it meanwhile.
-- No row: no such active claim of this user, or its slot has been taken.
--
-- The claim row is locked first (FOR NO KEY UPDATE in `c`, reached through the scalar subquery
-- before the image row is read), then the image row: the order every claim statement uses. The
-- slot check is on the image row as locked (re-checked on its newest version), like the claim
-- query's, so it cannot race with another annotator's claim.
--
-- "Still unexpired" is read from the claim's lease on the image row, not from the claim row:
-- now() is this statement's start, and a statement that started just before the expiry but was
-- held up on a lock may reach the image row after another annotator has taken the image (whose
-- claim pruned this expired lease). The claim row would still say "unexpired at now()"; the
-- image row no longer holds the lease, so the slot check decides (tests/claim_races_test.ts).
WITH c AS MATERIALIZED (
  SELECT c.id, c.image_id, c.user_id, c.expires_at,
    now() + make_interval(secs => d.claim_ttl_seconds) AS new_expires_at,
    d.annotations_per_image AS k
  FROM claims c
  JOIN datasets d ON d.id = c.dataset_id
  WHERE c.id = $1::bigint AND c.user_id = $2::bigint AND c.active
  FOR NO KEY UPDATE OF c
),
leased AS (
  UPDATE images i
  SET leases = ARRAY(
      SELECT l FROM unnest(i.leases) l
      WHERE l.expires_at > now() AND l.claim_id <> (SELECT id FROM c)
    ) || (SELECT ROW(c.id, c.user_id, c.new_expires_at)::lease FROM c)
  WHERE i.id = (SELECT image_id FROM c)
    AND (
      EXISTS (
        SELECT FROM unnest(i.leases) l
        WHERE l.claim_id = (SELECT id FROM c) AND l.expires_at > now()
      )
      OR (
        NOT ((SELECT user_id FROM c) = ANY (i.annotators))
        AND cardinality(i.annotators)
          + (SELECT count(*) FROM unnest(i.leases) l
            WHERE l.expires_at > now() AND l.claim_id <> (SELECT id FROM c))
          < (SELECT k FROM c)
      )
    )
  RETURNING i.id
)
UPDATE claims
SET expires_at = (SELECT new_expires_at FROM c)
WHERE id = (SELECT id FROM c) AND EXISTS (SELECT FROM leased)
RETURNING id::text, dataset_id::text, image_id::text, user_id::text, created_at, expires_at, active,
  end_reason, true AS live;
