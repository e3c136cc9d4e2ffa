-- migrate:up
-- The annotation loop. See sql/claims/claim_next_image.sql for why the claim state that decides
-- "may this image be claimed?" lives on the image row (leases, annotators) and not only in claims.

-- One live lease of an image: a copy of an active claim's (id, user, expiry) on the image row.
CREATE TYPE lease AS (claim_id bigint, user_id bigint, expires_at timestamptz);

-- leases: claims on this image not yet completed or released. Entries may have expired; those
-- never count and are pruned whenever the row is written, so no background job is needed.
-- annotators: the distinct users with a human annotation on this image; cardinality(annotators)
-- is the image's human annotation count, and `done` is cardinality(annotators) >= the dataset's
-- annotations_per_image.
ALTER TABLE images
  ADD COLUMN leases lease[] NOT NULL DEFAULT '{}',
  ADD COLUMN annotators bigint[] NOT NULL DEFAULT '{}';

-- Every claim ever made, kept after it ends (history and audit). `active` means not yet ended;
-- an active claim whose expires_at has passed no longer holds its slot, but its holder may still
-- renew or submit while nobody else has taken the slot.
CREATE TABLE claims (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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

-- At most one live claim per annotator per dataset, enforced by the database: a concurrent second
-- claim by the same user (a double click) waits for the first INSERT, then does nothing
-- (ON CONFLICT ... DO NOTHING in claim_next_image.sql). Also serves "the caller's active claim".
CREATE UNIQUE INDEX claims_one_active_per_user ON claims (dataset_id, user_id) WHERE active;

-- Deleting an image cascades to its claims; without this, every image delete scans claims.
CREATE INDEX claims_image_id_idx ON claims (image_id);

CREATE TABLE annotations (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  image_id bigint NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  dataset_id bigint NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
  source text NOT NULL CHECK (source IN ('human', 'machine')),
  author_id bigint NOT NULL REFERENCES users (id),
  claim_id bigint REFERENCES claims (id) ON DELETE SET NULL,
  model_name text,
  model_version text,
  confidence double precision CHECK (confidence BETWEEN 0 AND 1),
  labels text[] NOT NULL DEFAULT '{}',
  shapes jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  -- The inserting transaction's id: the changes feed orders by (txid, id) and only hands out rows
  -- of transactions older than every running one (sql/annotations/list_dataset_annotations.sql).
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  -- Machine annotations name their model (name and version) and have no claim; human ones have
  -- neither a model nor a confidence.
  CONSTRAINT annotations_model_iff_machine CHECK ((source = 'machine') = (model_name IS NOT NULL)),
  CONSTRAINT annotations_model_complete CHECK ((model_name IS NULL) = (model_version IS NULL)),
  CONSTRAINT annotations_claim_human_only CHECK (source = 'human' OR claim_id IS NULL),
  CONSTRAINT annotations_confidence_machine_only CHECK (source = 'machine' OR confidence IS NULL)
);

-- The changes feed: keyset over (txid, id) within a dataset.
CREATE INDEX annotations_dataset_txid_id_idx ON annotations (dataset_id, txid, id);
-- An image's annotations in id order (and the image-delete cascade).
CREATE INDEX annotations_image_id_id_idx ON annotations (image_id, id);
-- Deleting a claim (only ever through an image or dataset delete) sets claim_id to null here;
-- without this index each deleted claim would scan annotations.
CREATE INDEX annotations_claim_id_idx ON annotations (claim_id) WHERE claim_id IS NOT NULL;

-- migrate:down
DROP TABLE annotations;
DROP TABLE claims;
ALTER TABLE images DROP COLUMN leases, DROP COLUMN annotators;
DROP TYPE lease;
