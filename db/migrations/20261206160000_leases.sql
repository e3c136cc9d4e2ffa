-- migrate:up
-- One definition of a lease for both queues: current_leases (one row per holder, dataset and
-- kind) and ended_leases (their history), each partitioned by kind. The annotation queue's
-- leases stay in current_claims and ended_claims and the review queue's in current_reviews and
-- ended_reviews, now their partitions: the claim and submit statements name their partition
-- directly (their plans, keys and conflict targets do not change), while renewing, releasing,
-- revoking and looking up a lease are one statement each for both kinds, on the parent with
-- `kind = :kind` (pruned to one partition). A review lease's id column is claim_id, as in the
-- lease type and submitReview's body.
--
-- The partitions keep their own keys (a key on the parent would have to include kind, which
-- would widen every claim's index entries): current_* on (user_id, dataset_id), ended_* on
-- claim_id. Claim and review ids come from two sequences, so (kind, claim_id) is what names a
-- lease across the two. They keep their CHECK constraints too, as they were (end_reason's
-- values, and a review's decision set exactly when it completed).

ALTER TABLE current_claims
  ADD COLUMN kind text NOT NULL DEFAULT 'annotate'
    CONSTRAINT current_claims_kind CHECK (kind = 'annotate');
ALTER TABLE current_reviews RENAME COLUMN review_id TO claim_id;
ALTER TABLE current_reviews
  ADD COLUMN kind text NOT NULL DEFAULT 'review'
    CONSTRAINT current_reviews_kind CHECK (kind = 'review');

ALTER TABLE ended_claims
  ADD COLUMN decision text CONSTRAINT ended_claims_no_decision CHECK (decision IS NULL),
  ADD COLUMN kind text NOT NULL DEFAULT 'annotate'
    CONSTRAINT ended_claims_kind CHECK (kind = 'annotate');
ALTER TABLE ended_reviews RENAME COLUMN review_id TO claim_id;
ALTER TABLE ended_reviews
  ADD COLUMN kind text NOT NULL DEFAULT 'review'
    CONSTRAINT ended_reviews_kind CHECK (kind = 'review');

CREATE TABLE current_leases (
  user_id bigint NOT NULL,
  dataset_id bigint NOT NULL,
  claim_id bigint NOT NULL,
  image_id bigint NOT NULL,
  claimed_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  active boolean NOT NULL,
  kind text NOT NULL
) PARTITION BY LIST (kind);
COMMENT ON TABLE current_leases IS
  'Each holder''s latest lease per dataset and kind (annotate: current_claims; review: current_reviews).';

CREATE TABLE ended_leases (
  claim_id bigint NOT NULL,
  dataset_id bigint NOT NULL,
  image_id bigint NOT NULL,
  user_id bigint NOT NULL,
  claimed_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  ended_at timestamptz NOT NULL,
  end_reason text NOT NULL,
  -- A completed review's decision; null for every other lease.
  decision text,
  kind text NOT NULL
) PARTITION BY LIST (kind);
COMMENT ON TABLE ended_leases IS
  'Leases that ended, and how (annotate: ended_claims; review: ended_reviews).';

-- The CHECK constraints on kind added above spare ATTACH its scan of each table.
ALTER TABLE current_leases ATTACH PARTITION current_claims FOR VALUES IN ('annotate');
ALTER TABLE current_leases ATTACH PARTITION current_reviews FOR VALUES IN ('review');
ALTER TABLE ended_leases ATTACH PARTITION ended_claims FOR VALUES IN ('annotate');
ALTER TABLE ended_leases ATTACH PARTITION ended_reviews FOR VALUES IN ('review');

-- Every lease as it stands, live or ended: the active rows of current_leases and all of
-- ended_leases. A query on kind and id reads one partition of each (the quals reach both arms of
-- the UNION ALL). get_lease.sql reads it; `claims` stays as the annotation kind's part of it.
CREATE VIEW leases AS
  SELECT kind, claim_id AS id, dataset_id, image_id, user_id, claimed_at AS created_at,
    expires_at, true AS active, NULL::timestamptz AS ended_at, NULL::text AS end_reason,
    NULL::text AS decision
  FROM current_leases
  WHERE active
  UNION ALL
  SELECT kind, claim_id, dataset_id, image_id, user_id, claimed_at, expires_at, false, ended_at,
    end_reason, decision
  FROM ended_leases;

DROP VIEW claims;
CREATE VIEW claims AS
  SELECT id, dataset_id, image_id, user_id, created_at, expires_at, active, ended_at, end_reason
  FROM leases
  WHERE kind = 'annotate';

-- migrate:down
DROP VIEW claims;
DROP VIEW leases;
CREATE VIEW claims AS
  SELECT claim_id AS id, dataset_id, image_id, user_id, claimed_at AS created_at, expires_at,
    true AS active, NULL::timestamptz AS ended_at, NULL::text AS end_reason
  FROM current_claims
  WHERE active
  UNION ALL
  SELECT claim_id, dataset_id, image_id, user_id, claimed_at, expires_at, false, ended_at,
    end_reason
  FROM ended_claims;

ALTER TABLE current_leases DETACH PARTITION current_claims;
ALTER TABLE current_leases DETACH PARTITION current_reviews;
ALTER TABLE ended_leases DETACH PARTITION ended_claims;
ALTER TABLE ended_leases DETACH PARTITION ended_reviews;
DROP TABLE current_leases;
DROP TABLE ended_leases;

ALTER TABLE current_claims DROP COLUMN kind;
ALTER TABLE current_reviews DROP COLUMN kind;
ALTER TABLE current_reviews RENAME COLUMN claim_id TO review_id;
ALTER TABLE ended_claims DROP COLUMN kind, DROP COLUMN decision;
ALTER TABLE ended_reviews DROP COLUMN kind;
ALTER TABLE ended_reviews RENAME COLUMN claim_id TO review_id;
