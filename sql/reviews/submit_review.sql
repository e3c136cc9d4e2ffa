-- name: SubmitReview :one
-- Records reviewer :user_id's decision :decision ('accept', 'fix' or 'reject') on image :image_id
-- under their review lease :review_id, and ends the review, in one statement.
--
-- Accepted only when, on the image row as locked (the checks are re-evaluated on its newest
-- version, so they cannot race with a review claim, a release, an amendment or a correction):
--   - the review is the caller's active review of this image (current_reviews, locked first:
--     the order every review statement uses), and the caller (role :caller_role) may still see
--     the dataset (may_see_dataset);
--   - the image still waits for review and its review_lease is this review's: live, or expired
--     with nobody else having taken the image since (a new review replaces the lease), as a late
--     submit of an annotation claim is judged;
--   - the caller is not one of its annotators (a reviewer never reviews their own work);
--   - for 'fix', the content fits: :used_labels are dataset labels, :max_x and :max_y inside the
--     image when its size is known.
--
-- Then, with the image row locked:
--   fix_inserted  'fix': the reviewer's annotation (:labels, :shapes), a human annotation by the
--                 reviewer, already 'accepted'. Not added to annotators: it fills no slot.
--   settled       settle_human_annotations() sets every current human annotation of the image
--                 (but the fix) to 'accepted', 'rejected' or, for a fix, 'superseded', reviewed by
--                 the caller with :comment, and returns their authors. It reads with a fresh
--                 snapshot taken after the lock, so an annotation committed while this statement
--                 waited for the row is settled too.
--   image_reviewed accept and fix: review 'accepted'. reject: back to the annotation queue; the
--                 rejected authors leave annotators (so they may annotate it again), done and
--                 full_until follow, and rework_for/rework_until give them the first claim for one
--                 claim TTL.
--   review_completed / review_ended  the review ends as 'completed' with its decision.
--   events        review.<accepted|fixed|rejected>, and image.completed on acceptance (with review
--                 on, an image completes when it is accepted, not at its k-th annotation), for
--                 the webhooks subscribed.
-- No row: any check above failed; the caller diagnoses which (leases/get_lease.sql,
-- get_review_target.sql).
WITH caller_review AS MATERIALIZED (
  SELECT dataset_id, claimed_at, expires_at
  FROM current_reviews
  WHERE user_id = :user_id::bigint AND claim_id = :review_id::bigint
    AND image_id = :image_id::bigint AND active
  FOR NO KEY UPDATE
),
locked AS MATERIALIZED (
  SELECT i.id, i.dataset_id, i.external_id, i.uri, i.annotators, i.annotations_per_image,
    d.claim_ttl_seconds AS ttl
  FROM images i
  JOIN datasets d ON d.id = i.dataset_id
  WHERE i.id = :image_id::bigint
    AND EXISTS (SELECT FROM caller_review)
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :user_id::bigint, :caller_role::text))
    AND i.review = 'waiting'
    AND (i.review_lease).claim_id = :review_id::bigint
    AND NOT (:user_id::bigint = ANY (i.annotators))
    AND (
      :decision::text <> 'fix'
      OR (
        :used_labels::text[] <@ d.labels
        AND (i.width IS NULL OR :max_x::float8 <= i.width)
        AND (i.height IS NULL OR :max_y::float8 <= i.height)
      )
    )
  FOR NO KEY UPDATE OF i
),
fix_inserted AS MATERIALIZED (
  INSERT INTO annotations (image_id, dataset_id, source, author_id, labels, shapes, status,
    reviewed_by, reviewed_at, review_comment)
  SELECT l.id, l.dataset_id, 'human', :user_id::bigint, :labels::text[], :shapes::jsonb,
    'accepted', :user_id::bigint, now(), :comment::text
  FROM locked l
  WHERE :decision::text = 'fix'
  RETURNING id, image_id, dataset_id, source, author_id, model_name, model_version, confidence,
    labels, shapes, created_at, status, reviewed_by, reviewed_at, review_comment
),
settled AS MATERIALIZED (
  SELECT settle_human_annotations(
      l.id,
      CASE :decision::text WHEN 'accept' THEN 'accepted' WHEN 'reject' THEN 'rejected'
        ELSE 'superseded' END,
      :user_id::bigint,
      :comment::text,
      (SELECT id FROM fix_inserted)
    ) AS authors
  FROM locked l
),
image_reviewed AS (
  UPDATE images i
  SET review = CASE WHEN :decision::text = 'reject' THEN NULL ELSE 'accepted' END,
    review_lease = NULL,
    review_since = NULL,
    annotators = r.annotators,
    done = CASE WHEN :decision::text = 'reject'
      THEN cardinality(r.annotators) >= i.annotations_per_image ELSE i.done END,
    full_until = CASE WHEN :decision::text = 'reject'
      THEN lease_full_until(cardinality(r.annotators), live_leases(i.leases, NULL),
        i.annotations_per_image)
      ELSE i.full_until END,
    rework_for = CASE WHEN :decision::text = 'reject' THEN r.rework_for ELSE '{}' END,
    rework_until = CASE WHEN :decision::text = 'reject' AND cardinality(r.rework_for) > 0
      THEN now() + make_interval(secs => l.ttl) END
  FROM locked l
  CROSS JOIN settled s
  CROSS JOIN LATERAL (
    -- reject: the annotators whose annotations it rejected leave annotators and get the rework.
    SELECT CASE WHEN :decision::text = 'reject'
        THEN ARRAY(SELECT u FROM unnest(l.annotators) u WHERE u <> ALL (s.authors))
        ELSE l.annotators END AS annotators,
      ARRAY(SELECT u FROM unnest(l.annotators) u WHERE u = ANY (s.authors)) AS rework_for
  ) r
  WHERE i.id = l.id
  RETURNING i.id, i.dataset_id, i.external_id, i.uri, i.width, i.height, i.priority, i.metadata,
    i.created_at, i.done, i.full_until, i.review, i.annotators, i.annotations_per_image,
    i.rework_for
),
review_completed AS (
  UPDATE current_reviews
  SET active = false
  WHERE user_id = :user_id::bigint AND dataset_id = (SELECT dataset_id FROM caller_review)
    AND EXISTS (SELECT FROM image_reviewed)
),
review_ended AS (
  INSERT INTO ended_reviews (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason, decision)
  SELECT :review_id::bigint, i.dataset_id, i.id, :user_id::bigint, c.claimed_at, c.expires_at,
    now(), 'completed', :decision::text
  FROM image_reviewed i
  CROSS JOIN caller_review c
),
-- Webhook events, shaped as create_human_annotation.sql's: built only for subscribers.
event AS MATERIALIZED (
  SELECT i.dataset_id, e.type, e.data, nextval('webhook_event_ids') AS id
  FROM image_reviewed i
  CROSS JOIN settled s
  CROSS JOIN LATERAL (
    SELECT t.type,
      jsonb_build_object(
        'review', jsonb_build_object(
          'id', :review_id::bigint::text, 'decision', :decision::text,
          'reviewer_id', :user_id::bigint::text, 'comment', :comment::text,
          'author_ids', (SELECT coalesce(jsonb_agg(a::text), '[]'::jsonb) FROM unnest(s.authors) a),
          'fix_annotation_id', (SELECT id::text FROM fix_inserted)
        ),
        'image', webhook_image(i.id, i.dataset_id, i.external_id, i.uri)
      ) AS data
    FROM (
      SELECT CASE :decision::text WHEN 'accept' THEN 'review.accepted'
        WHEN 'fix' THEN 'review.fixed' ELSE 'review.rejected' END AS type
    ) t
    WHERE EXISTS (SELECT FROM webhook_subscribers(t.type, i.dataset_id))
    UNION ALL
    SELECT 'image.completed',
      jsonb_build_object(
        'image', webhook_image(i.id, i.dataset_id, i.external_id, i.uri),
        'annotations_per_image', i.annotations_per_image,
        'annotator_ids', (SELECT array_agg(u::text) FROM unnest(i.annotators) u),
        'completed_by_annotation_id', (SELECT id::text FROM fix_inserted),
        'accepted_by_review_id', :review_id::bigint::text
      )
    WHERE i.review = 'accepted'
      AND EXISTS (SELECT FROM webhook_subscribers('image.completed', i.dataset_id))
  ) e
),
event_queued AS (
  INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data)
  SELECT w.webhook_id, e.id, e.type, e.data
  FROM event e
  CROSS JOIN LATERAL webhook_subscribers(e.type, e.dataset_id) w
)
SELECT i.id::text, i.dataset_id::text, i.external_id, i.uri, i.width, i.height, i.priority,
  i.metadata, image_status(i.done, i.full_until, i.review) AS status, i.created_at,
  (SELECT coalesce(jsonb_agg(a::text), '[]'::jsonb) FROM unnest(s.authors) a) AS author_ids,
  (
    SELECT jsonb_build_object('id', f.id::text, 'image_id', f.image_id::text,
      'dataset_id', f.dataset_id::text, 'source', f.source, 'author_id', f.author_id::text,
      'model_name', f.model_name, 'model_version', f.model_version, 'confidence', f.confidence,
      'labels', to_jsonb(f.labels), 'shapes', f.shapes, 'created_at', f.created_at,
      'status', f.status, 'reviewed_by', f.reviewed_by::text, 'reviewed_at', f.reviewed_at,
      'review_comment', f.review_comment)
    FROM fix_inserted f
  ) AS fix
FROM image_reviewed i
CROSS JOIN settled s;
