-- migrate:up
CREATE TABLE datasets (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  description text,
  labels text[] NOT NULL,
  annotations_per_image smallint NOT NULL DEFAULT 1
    CHECK (annotations_per_image BETWEEN 1 AND 10),
  claim_ttl_seconds integer NOT NULL DEFAULT 900
    CHECK (claim_ttl_seconds BETWEEN 30 AND 86400),
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT datasets_name_key UNIQUE (name),
  CONSTRAINT datasets_labels_not_empty CHECK (cardinality(labels) BETWEEN 1 AND 1000)
);

CREATE TABLE images (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset_id bigint NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
  external_id text,
  uri text NOT NULL,
  width integer CHECK (width > 0),
  height integer CHECK (height > 0),
  -- Higher means "annotate sooner". Finite only: NaN would sort above +Infinity in PostgreSQL.
  priority double precision NOT NULL DEFAULT 0
    CHECK (priority <> 'NaN' AND priority <> 'Infinity' AND priority <> '-Infinity'),
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Claim-loop state lives on the image row itself (see sql/claims/claim_next_image.sql):
  -- `done` is true once the image has the dataset's annotations_per_image human annotations.
  done boolean NOT NULL DEFAULT false
);

-- Re-registering an external_id is idempotent: ON CONFLICT targets this index.
CREATE UNIQUE INDEX images_dataset_external_id_key
  ON images (dataset_id, external_id) WHERE external_id IS NOT NULL;

-- listImages pages through a dataset by id (keyset pagination).
CREATE INDEX images_dataset_id_id_idx ON images (dataset_id, id);

-- The claim queue: exactly the claim query's ORDER BY (priority DESC, then oldest), limited to
-- images that still need human work, so "next image" is an index scan that stops at the first
-- claimable row instead of a sort over the dataset. Done images leave the index.
CREATE INDEX images_claim_queue_idx
  ON images (dataset_id, priority DESC, id) WHERE NOT done;

-- migrate:down
DROP TABLE images;
DROP TABLE datasets;
