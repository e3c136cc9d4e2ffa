-- The table shape for the naive cycle (bench/naive_cycle.sql): the same image columns as
-- `images`, a textbook status column in place of leases and annotators, the same indexes (the
-- queue index in the claim's ORDER BY, limited to the rows it can pick), and an annotations
-- table with its image foreign key and index.
DROP TABLE IF EXISTS naive_annotations, naive_images;

CREATE TABLE naive_images (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset_id bigint NOT NULL,
  external_id text,
  uri text NOT NULL,
  width integer CHECK (width > 0),
  height integer CHECK (height > 0),
  priority double precision NOT NULL DEFAULT 0,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'claimed', 'done')),
  claimed_by integer,
  claimed_at timestamptz
);

CREATE UNIQUE INDEX naive_images_dataset_external_id_key
  ON naive_images (dataset_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX naive_images_dataset_id_id_idx ON naive_images (dataset_id, id);
CREATE INDEX naive_images_queue_idx
  ON naive_images (dataset_id, priority DESC, id) WHERE status = 'pending';

CREATE TABLE naive_annotations (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  image_id bigint NOT NULL REFERENCES naive_images (id),
  user_id integer NOT NULL,
  labels text[] NOT NULL,
  shapes jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX naive_annotations_image_id_idx ON naive_annotations (image_id);
