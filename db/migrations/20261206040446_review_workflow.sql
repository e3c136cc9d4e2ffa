-- migrate:up
-- Review and corrections (docs/decisions/0017-review-workflow.md): a reviewer role, a per-dataset
-- review rate, the review state on the image row (where the claim and review statements decide,
-- for the reasons sql/claims/claim_next_image.sql gives), an annotation status, and the review
-- leases' tables, shaped like the claims' (current_claims, ended_claims).
--
-- Upgrading: every ADD COLUMN below has a constant default or none, so none rewrites its table;
-- each CHECK added with a column is verified by one read of its table under this migration's
-- lock (about a second per million rows). Existing annotations become 'submitted', existing
-- images keep their status ('done' stays done: review applies to images completed from now on).

-- The reviewer: everything an annotator may do, and the review queue. Privilege order, which an
-- identity provider's token with several roles is read in: admin, reviewer, annotator, machine.
ALTER TABLE users
  DROP CONSTRAINT users_role_check,
  ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'reviewer', 'annotator', 'machine'));

-- The share of images that go to review when they get their k-th human annotation: 0 (none) to 1
-- (every one). review_selected() decides per image.
ALTER TABLE datasets
  ADD COLUMN review_rate float8 NOT NULL DEFAULT 0 CHECK (review_rate >= 0 AND review_rate <= 1);

-- The review state, on the image row so the review claim and submit decide on the row they lock
-- (EvalPlanQual re-checks its newest version):
--   review        null (never selected, or sent back to annotation), 'waiting' (in the review
--                 queue, leased or not) or 'accepted' (accepted, or fixed by its reviewer).
--   review_lease  the review holding the image: (review id, reviewer, expiry), at most one. An
--                 expired lease stops counting when its expiry passes; the holder's late submit
--                 is still accepted while nobody else has taken the image (as with claims).
--   review_since  when the image entered the review queue (the queue's order after priority).
--   rework_for    after a reject: the annotators whose work was rejected. Until rework_until
--   rework_until  (one claim TTL after the reject) only they may claim the image, and their next
--                 claim in the dataset returns it before anything else. Emptied as they submit,
--                 and by any submit once rework_until has passed.
-- No column here is in an index's key except through the two partial indexes below, so a review
-- lease (review_lease only) is a HOT update like an annotation lease.
ALTER TABLE images
  ADD COLUMN review text CHECK (review IN ('waiting', 'accepted')),
  ADD COLUMN review_lease lease,
  ADD COLUMN review_since timestamptz,
  ADD COLUMN rework_for bigint[] NOT NULL DEFAULT '{}',
  ADD COLUMN rework_until timestamptz,
  ADD CONSTRAINT images_review_queue CHECK ((review = 'waiting') = (review_since IS NOT NULL)),
  ADD CONSTRAINT images_review_lease_waiting CHECK (review_lease IS NULL OR review = 'waiting');

-- The review queue, in claim_next_review.sql's exact ORDER BY (priority, then the oldest to enter
-- review; id breaks ties): the scan walks it with no sort and stops at the first image it can
-- lock. Partial: only images waiting for review, so the queue's size is the backlog, not the
-- dataset.
CREATE INDEX images_review_queue_idx ON images (dataset_id, priority DESC, review_since, id)
  WHERE review = 'waiting';

-- Rejected images waiting for their annotators' rework, by annotator: the claim statements probe
-- it once per claim for the caller's own (rework_for @> ARRAY[caller]), then keep its dataset's.
-- GIN on the array, not a btree led by dataset_id: a btree probe reads every image of the dataset
-- awaiting anyone's rework (1,000 for others: 390-600 µs a claim, against 4-6 µs for none), this
-- one only the caller's (10-11 µs either way; docs/decisions/0017-review-workflow.md,
-- bench/experiments/rework_probe.ts). fastupdate off: only a reject and a rework's submit write
-- entries, and a pending list would be read by every claim.
CREATE INDEX images_rework_idx ON images USING gin (rework_for) WITH (fastupdate = off)
  WHERE rework_until IS NOT NULL;

-- An annotation's standing:
--   submitted   current, not reviewed (every machine prediction that is its model's latest).
--   accepted    current, accepted by a reviewer (or written by one: a fix).
--   rejected    rejected by reviewed_by, with review_comment.
--   superseded  replaced: by a reviewer's fix, an admin's correction, its author's amendment, or
--               (predictions) the same model's newer prediction.
-- "Current" is submitted or accepted. Rows are never edited otherwise: a correction is a new row.
-- A status change also moves the row's txid to the changing transaction's, so the changes feed
-- (ordered by txid, id) delivers the row again, after its cursor, with its new status.
ALTER TABLE annotations
  ADD COLUMN status text NOT NULL DEFAULT 'submitted'
    CHECK (status IN ('submitted', 'accepted', 'rejected', 'superseded')),
  ADD COLUMN reviewed_by bigint REFERENCES users (id),
  ADD COLUMN reviewed_at timestamptz,
  ADD COLUMN review_comment text;

-- Review leases, as claims (20261202021000_current_claims.sql says why this shape): one row per
-- (reviewer, dataset) rewritten in place, and the ended ones appended to ended_reviews.
CREATE SEQUENCE review_ids AS bigint;

CREATE TABLE current_reviews (
  user_id bigint NOT NULL REFERENCES users (id),
  dataset_id bigint NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
  review_id bigint NOT NULL,
  image_id bigint NOT NULL,
  claimed_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  -- Not yet submitted or released.
  active boolean NOT NULL,
  PRIMARY KEY (user_id, dataset_id)
) WITH (fillfactor = 50);

CREATE TABLE ended_reviews (
  review_id bigint PRIMARY KEY,
  dataset_id bigint NOT NULL,
  image_id bigint NOT NULL,
  user_id bigint NOT NULL,
  claimed_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  ended_at timestamptz NOT NULL,
  -- 'completed' (submitted, with its decision), 'released', 'expired', 'revoked' (its reviewer
  -- could no longer see the dataset: sql/reviews/revoke_reviews.sql).
  end_reason text NOT NULL CHECK (end_reason IN ('completed', 'released', 'expired', 'revoked')),
  decision text CHECK (decision IN ('accept', 'fix', 'reject')),
  CONSTRAINT ended_reviews_decision CHECK ((end_reason = 'completed') = (decision IS NOT NULL))
);

-- getDatasetStats counts reviews per reviewer in a dataset.
CREATE INDEX ended_reviews_dataset_id_idx ON ended_reviews (dataset_id);

-- An image's status as the API shows it: 'accepted' once a reviewer accepted (or fixed) it,
-- 'in_review' while it waits for review, 'done' once it has its k human annotations and was not
-- selected for review, 'in_progress' while every remaining slot is under a live lease, else
-- 'pending' (a rejected image is pending or in_progress again). Replaces the two-argument one.
DROP FUNCTION image_status(boolean, timestamptz);
CREATE FUNCTION image_status(done boolean, full_until timestamptz, review text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN review = 'accepted' THEN 'accepted'
    WHEN review = 'waiting' THEN 'in_review'
    WHEN done THEN 'done'
    WHEN full_until > now() THEN 'in_progress'
    ELSE 'pending'
  END
$$;

-- Whether image `image_id` of dataset `dataset_id` goes to review at rate `rate`: a hash of the
-- two ids, read as a fraction in [0, 1), below the rate. No random state to store, and the same
-- answer every time it is asked (a rejected image, completed again, goes back to review while the
-- rate stays). hashint8extended is PostgreSQL's hash for hash partitioning, kept stable across
-- versions for that reason.
CREATE FUNCTION review_selected(dataset_id bigint, image_id bigint, rate float8) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT rate > 0 AND (hashint8extended(image_id, dataset_id) & 9223372036854775807)::float8
    / 9223372036854775808.0 < rate
$$;

-- Whether user `user_id` annotating an image (done, annotators, k as the row has them before the
-- write) completes it: it was not done, and the annotator added is the k-th. The submit that
-- completes an image decides whether it goes to review.
CREATE FUNCTION completes_image(done boolean, annotators bigint[], user_id bigint, k smallint)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT NOT done AND NOT (user_id = ANY (annotators)) AND cardinality(annotators) + 1 >= k
$$;

-- Sets every current (submitted or accepted) human annotation of image `image_id` but `except_id`
-- to `new_status`, reviewed by `by_user` with `comment`, moving each to this transaction's txid
-- (the feed delivers it again). Returns the authors of the rows it changed.
--
-- VOLATILE, so its UPDATE takes a fresh snapshot (READ COMMITTED): a caller locks the image row
-- first, and then this sees every annotation of the image committed before that lock, not only
-- those in the calling statement's older snapshot. Every statement that writes a human
-- annotation locks its image row first, so none can be missed or slip in between. (The
-- calling statement's own new row may be visible here: `except_id` keeps it out.)
CREATE FUNCTION settle_human_annotations(image_id bigint, new_status text, by_user bigint,
  comment text, except_id bigint)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  authors bigint[];
BEGIN
  WITH changed AS (
    UPDATE annotations a
    SET status = new_status, reviewed_by = by_user, reviewed_at = now(),
      review_comment = comment, txid = pg_current_xact_id()
    WHERE a.image_id = settle_human_annotations.image_id AND a.source = 'human'
      AND a.status IN ('submitted', 'accepted') AND a.id IS DISTINCT FROM except_id
    RETURNING a.author_id
  )
  SELECT coalesce(array_agg(DISTINCT author_id), '{}') INTO authors FROM changed;
  RETURN authors;
END
$$;

-- The current human annotations of image `image_id`, each with its author's name, in id order,
-- as the JSON claimNextReview answers. VOLATILE for the same reason as the function above: read
-- after the image row is locked, it sees what a submit of the review will act on.
CREATE FUNCTION review_annotations(image_id bigint) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  RETURN (
    SELECT coalesce(jsonb_agg(jsonb_build_object(
      'id', a.id::text, 'image_id', a.image_id::text, 'dataset_id', a.dataset_id::text,
      'source', a.source, 'author_id', a.author_id::text, 'author_name', u.name,
      'model_name', a.model_name, 'model_version', a.model_version, 'confidence', a.confidence,
      'labels', to_jsonb(a.labels), 'shapes', a.shapes, 'created_at', a.created_at,
      'status', a.status, 'reviewed_by', a.reviewed_by::text, 'reviewed_at', a.reviewed_at,
      'review_comment', a.review_comment
    ) ORDER BY a.id), '[]'::jsonb)
    FROM annotations a
    JOIN users u ON u.id = a.author_id
    WHERE a.image_id = review_annotations.image_id AND a.source = 'human'
      AND a.status IN ('submitted', 'accepted')
  );
END
$$;

-- At most one current prediction per model on an image: a machine re-pushing a prediction
-- supersedes its model's earlier one in the same statement (create_machine_annotation.sql,
-- create_predictions.sql), and this index makes the rule the database's. Two pushes of one model
-- to one image at once: the second to insert waits for the first's index entry and, once the
-- first commits, fails with a unique violation; the server runs it again, and its new snapshot
-- sees the first and supersedes it. Partial: human annotations add no entry, and neither do
-- history rows. The predictions already stored are settled first (the newest of each image and
-- model stays current), without moving them in the changes feed.
UPDATE annotations a
SET status = 'superseded'
WHERE a.source = 'machine'
  AND EXISTS (
    SELECT FROM annotations b
    WHERE b.image_id = a.image_id AND b.source = 'machine' AND b.model_name = a.model_name
      AND b.id > a.id
  );
CREATE UNIQUE INDEX annotations_current_prediction_key ON annotations (image_id, model_name)
  WHERE source = 'machine' AND status = 'submitted';

-- The image's current prediction per model name (annotations_current_prediction_key: one per
-- model), ordered by model name, as the JSON objects the claim answers carry to pre-fill the
-- editor.
CREATE OR REPLACE FUNCTION latest_predictions(image_id bigint) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.model_name), '[]'::jsonb)
  FROM (
    SELECT a.id::text, a.image_id::text, a.dataset_id::text, a.source, a.author_id::text,
      a.model_name, a.model_version, a.confidence, a.labels, a.shapes, a.created_at, a.status,
      a.reviewed_by::text, a.reviewed_at, a.review_comment
    FROM annotations a
    WHERE a.image_id = latest_predictions.image_id AND a.source = 'machine'
      AND a.status = 'submitted'
  ) p
$$;

-- An annotation in a webhook event's data: as the API shows it, now with its status and review.
-- Replaces the eleven-argument one (20261206024049_webhooks.sql).
DROP FUNCTION webhook_annotation(bigint, bigint, bigint, text, bigint, text, text, float8, text[],
  jsonb, timestamptz);
CREATE FUNCTION webhook_annotation(id bigint, image_id bigint, dataset_id bigint, source text,
  author_id bigint, model_name text, model_version text, confidence float8, labels text[],
  shapes jsonb, created_at timestamptz, status text, reviewed_by bigint, reviewed_at timestamptz,
  review_comment text)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT jsonb_build_object(
    'id', id::text, 'image_id', image_id::text, 'dataset_id', dataset_id::text,
    'source', source, 'author_id', author_id::text,
    'model', CASE WHEN model_name IS NOT NULL
      THEN jsonb_build_object('name', model_name, 'version', model_version) END,
    'confidence', confidence, 'labels', to_jsonb(labels), 'shapes', shapes,
    'created_at', webhook_time(created_at), 'status', status,
    'reviewed_by', reviewed_by::text, 'reviewed_at', webhook_time(reviewed_at),
    'review_comment', review_comment
  )
$$;

-- The rework note a claim on an image sent back by a reviewer carries: the latest reject's
-- comment, reviewer and time. Null when the image has no rejected annotation.
CREATE FUNCTION rework_note(image_id bigint) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT jsonb_build_object('comment', a.review_comment, 'reviewed_by', a.reviewed_by::text,
    'reviewed_at', a.reviewed_at, 'rejected_annotation_id', a.id::text)
  FROM annotations a
  WHERE a.image_id = rework_note.image_id AND a.source = 'human' AND a.status = 'rejected'
  ORDER BY a.id DESC
  LIMIT 1
$$;

-- migrate:down
DROP FUNCTION rework_note(bigint);
DROP FUNCTION webhook_annotation(bigint, bigint, bigint, text, bigint, text, text, float8, text[],
  jsonb, timestamptz, text, bigint, timestamptz, text);
CREATE FUNCTION webhook_annotation(id bigint, image_id bigint, dataset_id bigint, source text,
  author_id bigint, model_name text, model_version text, confidence float8, labels text[],
  shapes jsonb, created_at timestamptz)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT jsonb_build_object(
    'id', id::text, 'image_id', image_id::text, 'dataset_id', dataset_id::text,
    'source', source, 'author_id', author_id::text,
    'model', CASE WHEN model_name IS NOT NULL
      THEN jsonb_build_object('name', model_name, 'version', model_version) END,
    'confidence', confidence, 'labels', to_jsonb(labels), 'shapes', shapes,
    'created_at', webhook_time(created_at)
  )
$$;
CREATE OR REPLACE FUNCTION latest_predictions(image_id bigint) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.model_name), '[]'::jsonb)
  FROM (
    SELECT DISTINCT ON (a.model_name)
      a.id::text, a.image_id::text, a.dataset_id::text, a.source, a.author_id::text,
      a.model_name, a.model_version, a.confidence, a.labels, a.shapes, a.created_at
    FROM annotations a
    WHERE a.image_id = latest_predictions.image_id AND a.source = 'machine'
    ORDER BY a.model_name, a.id DESC
  ) p
$$;
DROP INDEX annotations_current_prediction_key;
DROP FUNCTION review_annotations(bigint);
DROP FUNCTION settle_human_annotations(bigint, text, bigint, text, bigint);
DROP FUNCTION completes_image(boolean, bigint[], bigint, smallint);
DROP FUNCTION review_selected(bigint, bigint, float8);
DROP FUNCTION image_status(boolean, timestamptz, text);
CREATE FUNCTION image_status(done boolean, full_until timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN done THEN 'done' WHEN full_until > now() THEN 'in_progress' ELSE 'pending' END
$$;
DROP TABLE ended_reviews;
DROP TABLE current_reviews;
DROP SEQUENCE review_ids;
ALTER TABLE annotations
  DROP COLUMN review_comment, DROP COLUMN reviewed_at, DROP COLUMN reviewed_by, DROP COLUMN status;
DROP INDEX images_rework_idx;
DROP INDEX images_review_queue_idx;
ALTER TABLE images
  DROP CONSTRAINT images_review_lease_waiting, DROP CONSTRAINT images_review_queue,
  DROP COLUMN rework_until, DROP COLUMN rework_for, DROP COLUMN review_since,
  DROP COLUMN review_lease, DROP COLUMN review;
ALTER TABLE datasets DROP COLUMN review_rate;
-- A reviewer becomes an annotator: the role it included.
UPDATE users SET role = 'annotator' WHERE role = 'reviewer';
ALTER TABLE users
  DROP CONSTRAINT users_role_check,
  ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'annotator', 'machine'));
