-- name: CreateHumanAnnotation :one
-- Records user :user_id's annotation of image :image_id and completes their claim :claim_id, in
-- one statement.
--
-- With a claim (:claim_id not null): it must be the user's active claim on this image. Their
-- current_claims row is locked first (found by the key's first column, user_id), then the image
-- row: the order every claim statement uses. The checks run on the image row being updated, so
-- they are evaluated again on its newest version (EvalPlanQual) and cannot race with a claim, a
-- release or another submit:
--   - the user has not annotated the image yet (never the same annotator twice);
--   - the claim still holds a live lease on the row: accepted, whatever else happened meanwhile
--     (an admin's correction, a lowered annotations_per_image); or its lease expired and the
--     image still has a free slot: accepted too, as long as nobody else has taken the slot.
--     Judged by the lease on the image row, not by the claim's own expires_at: a claim that takes
--     an expired slot drops that lease in the same write (kept_leases keeps an expired lease
--     only while a slot is left for it), so a submit held up behind it sees the slot gone.
-- Without a claim (:claim_id null: an admin's correction): no slot check.
-- Either way the user (role :caller_role) must see the image's dataset (may_see_dataset, tested
-- on the dataset row): an image of a dataset it may not see is an image that does not exist.
-- Content: :used_labels (every label the annotation uses) must be dataset labels, and :max_x,
-- :max_y (its right- and bottom-most coordinates) inside the image when its size is known; the
-- caller diagnoses a refusal.
--
-- Then: the user joins annotators (once), the claim's lease leaves the image (expired leases are
-- pruned), done becomes cardinality(annotators) >= annotations_per_image, full_until follows;
-- the submit that completes the image sends it to review (review 'waiting') when the dataset's
-- review_rate selects it, and the submitter's rework reservation (rework_for) is used up;
-- the claim ends ('completed': its current_claims row turns inactive, a HOT update, and it enters
-- ended_claims), and the annotation is inserted and returned. No row: the claim is not an active
-- claim of this user on this image, the image does not exist, or the slot is gone. An admin's
-- correction (no claim) supersedes the image's current human annotations (corrected); on an
-- accepted image it is accepted itself. Last, the webhook events the change makes
-- (annotation.created; image.completed when this submit gave the image its k-th annotation and
-- did not send it to review; dataset.completed when that left no image to annotate), for the
-- webhooks subscribed to them.
WITH caller_claim AS MATERIALIZED (
  SELECT dataset_id, claimed_at, expires_at
  FROM current_claims
  WHERE user_id = :user_id::bigint AND claim_id = :claim_id::bigint
    AND image_id = :image_id::bigint AND active
  FOR NO KEY UPDATE
),
image_before AS MATERIALIZED (
  -- The annotators before a correction without a claim (which may repeat its author), for
  -- image.completed; read only then. In the statement's snapshot: only the same admin correcting
  -- the same image twice at once could find it stale, and then report the image completed twice
  -- (at least once is the promise).
  SELECT annotators FROM images WHERE id = :image_id::bigint
),
image_annotated AS (
  UPDATE images i
  SET annotators = CASE WHEN :user_id::bigint = ANY (i.annotators) THEN i.annotators
      ELSE i.annotators || :user_id::bigint END,
    -- Review: the submit that completes the image sends it to review when the dataset's
    -- review_rate selects it (review_selected: reproducible, per image).
    review = CASE WHEN completes_image(i.done, i.annotators, :user_id::bigint,
        i.annotations_per_image) AND review_selected(i.dataset_id, i.id, d.review_rate)
      THEN 'waiting' ELSE i.review END,
    review_since = CASE WHEN completes_image(i.done, i.annotators, :user_id::bigint,
        i.annotations_per_image) AND review_selected(i.dataset_id, i.id, d.review_rate)
      THEN now() ELSE i.review_since END,
    -- Rework: the submitter's reservation is used up; once the image is complete, or the window
    -- has passed, none is left (and the image leaves images_rework_idx).
    rework_for = CASE WHEN i.rework_until > now() AND NOT completes_image(i.done, i.annotators,
        :user_id::bigint, i.annotations_per_image)
      THEN array_remove(i.rework_for, :user_id::bigint) ELSE '{}' END,
    rework_until = CASE WHEN i.rework_until > now() AND NOT completes_image(i.done, i.annotators,
        :user_id::bigint, i.annotations_per_image)
        AND cardinality(array_remove(i.rework_for, :user_id::bigint)) > 0
      THEN i.rework_until END,
    leases = kept_leases(i.dataset_id, i.leases, :claim_id::bigint, NULL),
    done = cardinality(i.annotators)
        + CASE WHEN :user_id::bigint = ANY (i.annotators) THEN 0 ELSE 1 END
      >= i.annotations_per_image,
    full_until = lease_full_until(
      cardinality(i.annotators)
        + CASE WHEN :user_id::bigint = ANY (i.annotators) THEN 0 ELSE 1 END,
      live_leases(i.leases, :claim_id::bigint),
      i.annotations_per_image
    )
  FROM datasets d
  WHERE i.id = :image_id::bigint
    AND d.id = i.dataset_id
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :user_id::bigint, :caller_role::text))
    AND :used_labels::text[] <@ d.labels
    AND (i.width IS NULL OR :max_x::float8 <= i.width)
    AND (i.height IS NULL OR :max_y::float8 <= i.height)
    AND (
      :claim_id::bigint IS NULL
      OR (
        EXISTS (SELECT FROM caller_claim)
        AND NOT (:user_id::bigint = ANY (i.annotators))
        AND (
          holds_live_lease(i.leases, :claim_id::bigint)
          OR has_free_slot(i.annotators, i.leases, i.annotations_per_image, :claim_id::bigint)
        )
      )
    )
  RETURNING i.id, i.dataset_id, i.external_id, i.uri, i.annotators, i.annotations_per_image,
    i.review,
    -- This submit made the image done: it had k - 1 human annotations and now has k (done is
    -- always cardinality(annotators) >= k, so only the annotator it added can complete it).
    i.done AND cardinality(i.annotators) = i.annotations_per_image
      AND (:claim_id::bigint IS NOT NULL
        OR NOT (:user_id::bigint = ANY ((SELECT annotators FROM image_before)::bigint[])))
      AS completed
),
claim_completed AS (
  UPDATE current_claims
  SET active = false
  WHERE user_id = :user_id::bigint AND dataset_id = (SELECT dataset_id FROM caller_claim)
    AND EXISTS (SELECT FROM image_annotated)
),
claim_ended AS (
  INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
    ended_at, end_reason)
  SELECT :claim_id::bigint, a.dataset_id, a.id, :user_id::bigint, c.claimed_at, c.expires_at,
    now(), 'completed'
  FROM image_annotated a
  CROSS JOIN caller_claim c
),
annotation_inserted AS (
  -- An admin's correction of an accepted image is accepted: the admin vouches for it.
  INSERT INTO annotations (image_id, dataset_id, source, author_id, claim_id, labels, shapes,
    status, reviewed_by, reviewed_at)
  SELECT a.id, a.dataset_id, 'human', :user_id::bigint, :claim_id::bigint, :labels::text[],
    :shapes::jsonb, CASE WHEN x.vouched THEN 'accepted' ELSE 'submitted' END,
    CASE WHEN x.vouched THEN :user_id::bigint END, CASE WHEN x.vouched THEN now() END
  FROM image_annotated a
  CROSS JOIN LATERAL (
    SELECT :claim_id::bigint IS NULL AND a.review IS NOT DISTINCT FROM 'accepted' AS vouched
  ) x
  RETURNING id, image_id, dataset_id, source, author_id, model_name, model_version, confidence,
    labels, shapes, created_at, status, reviewed_by, reviewed_at, review_comment
),
corrected AS MATERIALIZED (
  -- An admin's correction supersedes the image's current human annotations (not itself), with a
  -- fresh snapshot taken after image_annotated locked the row (settle_human_annotations).
  SELECT settle_human_annotations(n.image_id, 'superseded', :user_id::bigint, NULL, n.id) AS authors
  FROM annotation_inserted n
  WHERE :claim_id::bigint IS NULL
),
-- Webhook events (the outbox, db/migrations/20261206024049_webhooks.sql): each built and written
-- only when an enabled webhook subscribes to it (webhook_subscribers, tested before the data is
-- built), so with none the submit pays a scan of that small table per event type and nothing
-- else. MATERIALIZED: one event id per event, whatever joins it.
event AS MATERIALIZED (
  SELECT i.dataset_id, e.type, e.data, nextval('webhook_event_ids') AS id
  FROM image_annotated i
  CROSS JOIN annotation_inserted n
  CROSS JOIN LATERAL (
    SELECT 'annotation.created' AS type,
      jsonb_build_object(
        'annotation', webhook_annotation(n.id, n.image_id, n.dataset_id, n.source, n.author_id,
          n.model_name, n.model_version, n.confidence, n.labels, n.shapes, n.created_at, n.status,
          n.reviewed_by, n.reviewed_at, n.review_comment),
        'image', webhook_image(i.id, i.dataset_id, i.external_id, i.uri)
      ) AS data
    WHERE EXISTS (SELECT FROM webhook_subscribers('annotation.created', i.dataset_id))
    UNION ALL
    SELECT 'image.completed',
      jsonb_build_object(
        'image', webhook_image(i.id, i.dataset_id, i.external_id, i.uri),
        'annotations_per_image', i.annotations_per_image,
        'annotator_ids', (SELECT array_agg(u::text) FROM unnest(i.annotators) u),
        'completed_by_annotation_id', n.id::text
      )
    -- With review, the image completes when a reviewer accepts it (submit_review.sql).
    WHERE i.completed AND i.review IS DISTINCT FROM 'waiting'
      AND EXISTS (SELECT FROM webhook_subscribers('image.completed', i.dataset_id))
    UNION ALL
    SELECT 'dataset.completed',
      jsonb_build_object('dataset_id', i.dataset_id::text, 'last_image_id', i.id::text)
    -- CASE fixes the order: the dataset's lock only when the image completed and someone listens.
    WHERE CASE WHEN i.completed
        AND EXISTS (SELECT FROM webhook_subscribers('dataset.completed', i.dataset_id))
      THEN dataset_completed_now(i.dataset_id, ARRAY[i.id]) ELSE false END
  ) e
),
event_queued AS (
  INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data)
  SELECT s.webhook_id, e.id, e.type, e.data
  FROM event e
  CROSS JOIN LATERAL webhook_subscribers(e.type, e.dataset_id) s
)
SELECT id::text, image_id::text, dataset_id::text, source, author_id::text,
  model_name, model_version, confidence, labels, shapes, created_at, status, reviewed_by::text,
  reviewed_at, review_comment
FROM annotation_inserted
-- corrected is a SELECT: it runs only when read.
WHERE (SELECT count(*) FROM corrected) >= 0;
