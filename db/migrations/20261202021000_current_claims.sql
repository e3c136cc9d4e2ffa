-- migrate:up
-- Claims, reshaped for the annotator loop's cost (bench/README.md, "What was tried").
--
-- Before: one `claims` table held every claim ever made. Each claim inserted a row (four index
-- entries: the key, the one-active-per-user index, image_id, and foreign-key checks against
-- datasets, images and users) and each submit rewrote it (active = false is a column of a partial
-- index's predicate, so never a HOT update: two more index entries). The caller's claim was found
-- through claims_one_active_per_user, whose (dataset, user) range keeps one dead entry per past
-- claim until a vacuum: ~30 buffer reads per claim after a few hundred cycles. Together about
-- 0.5 ms of PostgreSQL CPU per cycle at 32 annotators (bench/experiments/sql_concurrent.ts).
--
-- Now:
--   current_claims  one row per (annotator, dataset): the claim they hold or last held there.
--                   A claim rewrites this row in place; nothing indexed changes, so with room on
--                   its page (fillfactor 50) every rewrite is a HOT update with no index entry.
--                   Its key is what stops one annotator holding two claims in a dataset: a second
--                   claim by the same caller waits for the first on this row's lock.
--   ended_claims    append-only history: a row per claim that ended (completed, released,
--                   expired), keyed by the claim id (ids only grow, so its index is appended to).
--   claims (view)   both, in the old table's shape, for audits and ad-hoc queries.
-- The image row keeps the facts a claim must see on the row it locks (leases, annotators, done),
-- plus full_until: when every remaining slot is under a lease, the earliest of those leases'
-- expiries, else null. The claim scan then tests a column instead of unnesting the leases of
-- every image it steps over (sql/claims/claim_next_image.sql).
--
-- Foreign keys: dataset_id on claims and annotations repeated the image's own dataset (set from
-- the image row by every statement that writes them), and each check took FOR KEY SHARE on the
-- dataset's single row: with every concurrent claim and submit locking that one row, PostgreSQL
-- built a new MultiXact per check. The image foreign keys (and their cascades) remain.

-- Leave room on images pages so a lease (which changes no indexed column) is a HOT update.
ALTER TABLE images SET (fillfactor = 85);
ALTER TABLE images ADD COLUMN full_until timestamptz;

-- The leases that still hold a slot (unexpired), leaving out the claim `except_claim` (null:
-- none). Every statement that writes leases writes this, so expired leases are pruned on write.
CREATE FUNCTION live_leases(leases lease[], except_claim bigint) RETURNS lease[]
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(array_agg(l), '{}')
  FROM unnest(leases) l
  WHERE l.expires_at > now() AND l.claim_id IS DISTINCT FROM except_claim
$$;

-- images.full_until for an image with `annotated` human annotations and the leases `live` (all
-- unexpired) in a dataset wanting k: the earliest expiry when every slot is taken, else null.
CREATE FUNCTION lease_full_until(annotated integer, live lease[], k integer) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN annotated < k AND annotated + cardinality(live) >= k
    THEN (SELECT min(l.expires_at) FROM unnest(live) l)
  END
$$;

CREATE SEQUENCE claim_ids AS bigint;

CREATE TABLE current_claims (
  user_id bigint NOT NULL REFERENCES users (id),
  dataset_id bigint NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
  claim_id bigint NOT NULL,
  image_id bigint NOT NULL,
  claimed_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  -- Not yet completed or released: the claim holds its slot while expires_at is ahead, and its
  -- holder may still renew or submit after that while nobody else has taken the slot.
  active boolean NOT NULL,
  -- (user, dataset): renew and release find the caller's claim by the key's first column.
  PRIMARY KEY (user_id, dataset_id)
) WITH (fillfactor = 50);

CREATE TABLE ended_claims (
  claim_id bigint PRIMARY KEY,
  dataset_id bigint NOT NULL,
  image_id bigint NOT NULL,
  user_id bigint NOT NULL,
  claimed_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  -- When it stopped holding its slot: completion or release, or its expiry.
  ended_at timestamptz NOT NULL,
  end_reason text NOT NULL CHECK (end_reason IN ('completed', 'released', 'expired'))
);

-- Claims so far. The unique index admitted one active claim per (dataset, user).
INSERT INTO current_claims (user_id, dataset_id, claim_id, image_id, claimed_at, expires_at,
  active)
SELECT user_id, dataset_id, id, image_id, created_at, expires_at, true
FROM claims
WHERE active;
INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
  ended_at, end_reason)
SELECT id, dataset_id, image_id, user_id, created_at, expires_at, ended_at, end_reason
FROM claims
WHERE NOT active;
SELECT setval('claim_ids', coalesce((SELECT max(id) FROM claims), 0) + 1, false);

UPDATE images i
SET full_until = lease_full_until(cardinality(i.annotators), live_leases(i.leases, NULL),
  d.annotations_per_image)
FROM datasets d
WHERE d.id = i.dataset_id AND NOT i.done AND cardinality(i.leases) > 0;

ALTER TABLE annotations DROP CONSTRAINT annotations_claim_id_fkey;
ALTER TABLE annotations DROP CONSTRAINT annotations_dataset_id_fkey;
DROP INDEX annotations_claim_id_idx;
DROP TABLE claims;

CREATE VIEW claims AS
SELECT claim_id AS id, dataset_id, image_id, user_id, claimed_at AS created_at, expires_at,
  true AS active, NULL::timestamptz AS ended_at, NULL::text AS end_reason
FROM current_claims
WHERE active
UNION ALL
SELECT claim_id, dataset_id, image_id, user_id, claimed_at, expires_at, false, ended_at,
  end_reason
FROM ended_claims;

-- migrate:down
DROP VIEW claims;
CREATE TABLE claims (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  dataset_id bigint NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
  image_id bigint NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  user_id bigint NOT NULL REFERENCES users (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  active boolean NOT NULL DEFAULT true,
  ended_at timestamptz,
  end_reason text CHECK (end_reason IN ('completed', 'released', 'expired')),
  CONSTRAINT claims_ended_consistent
    CHECK (active = (ended_at IS NULL) AND active = (end_reason IS NULL))
);
INSERT INTO claims (id, dataset_id, image_id, user_id, created_at, expires_at, active, ended_at,
  end_reason)
SELECT claim_id, dataset_id, image_id, user_id, claimed_at, expires_at, true, NULL, NULL
FROM current_claims c
WHERE active AND EXISTS (SELECT FROM images i WHERE i.id = c.image_id)
UNION ALL
SELECT claim_id, dataset_id, image_id, user_id, claimed_at, expires_at, false, ended_at,
  end_reason
FROM ended_claims e
WHERE EXISTS (SELECT FROM images i WHERE i.id = e.image_id);
SELECT setval(pg_get_serial_sequence('claims', 'id'),
  greatest(coalesce((SELECT max(id) FROM claims), 0), (SELECT last_value FROM claim_ids)) + 1,
  false);
CREATE UNIQUE INDEX claims_one_active_per_user ON claims (dataset_id, user_id) WHERE active;
CREATE INDEX claims_image_id_idx ON claims (image_id);
UPDATE annotations a SET claim_id = NULL
WHERE claim_id IS NOT NULL AND NOT EXISTS (SELECT FROM claims c WHERE c.id = a.claim_id);
ALTER TABLE annotations ADD CONSTRAINT annotations_claim_id_fkey
  FOREIGN KEY (claim_id) REFERENCES claims (id) ON DELETE SET NULL;
ALTER TABLE annotations ADD CONSTRAINT annotations_dataset_id_fkey
  FOREIGN KEY (dataset_id) REFERENCES datasets (id) ON DELETE CASCADE;
CREATE INDEX annotations_claim_id_idx ON annotations (claim_id) WHERE claim_id IS NOT NULL;
DROP TABLE ended_claims;
DROP TABLE current_claims;
DROP SEQUENCE claim_ids;
DROP FUNCTION lease_full_until(integer, lease[], integer);
DROP FUNCTION live_leases(lease[], bigint);
ALTER TABLE images DROP COLUMN full_until;
ALTER TABLE images RESET (fillfactor);
