-- name: AmendAnnotation :one
-- Annotator :user_id (role :caller_role) replaces their own annotation :annotation_id with
-- :labels and :shapes: the old row becomes 'superseded' and a new one is inserted (same image,
-- author and claim; never edited in place), in one statement.
--
-- Allowed while the image is not yet reviewed: on the image row as locked (its newest version,
-- EvalPlanQual), the author is still one of its annotators (a reject takes them out), the image
-- is not accepted, and no reviewer holds a live review lease on it (the reviewer judges what the
-- review claim showed them). The old row must still be 'submitted' when it is updated: a reject,
-- fix or correction that committed first changed it, the update's re-check fails, and nothing is
-- written. Locks: the image row, then the annotation row, the order the review statements use.
-- Content as create_human_annotation.sql checks it (:used_labels, :max_x, :max_y). No row: any
-- check failed; the caller diagnoses which (get_review_target.sql and the annotation).
WITH original AS MATERIALIZED (
  SELECT a.id, a.image_id, a.claim_id
  FROM annotations a
  WHERE a.id = :annotation_id::bigint AND a.author_id = :user_id::bigint AND a.source = 'human'
    AND a.status = 'submitted'
),
locked AS MATERIALIZED (
  SELECT i.id, i.dataset_id
  FROM images i
  JOIN datasets d ON d.id = i.dataset_id
  WHERE i.id = (SELECT image_id FROM original)
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :user_id::bigint, :caller_role::text))
    AND :user_id::bigint = ANY (i.annotators)
    AND i.review IS DISTINCT FROM 'accepted'
    AND (i.review_lease IS NULL OR (i.review_lease).expires_at <= now())
    AND :used_labels::text[] <@ d.labels
    AND (i.width IS NULL OR :max_x::float8 <= i.width)
    AND (i.height IS NULL OR :max_y::float8 <= i.height)
  FOR NO KEY UPDATE OF i
),
superseded AS MATERIALIZED (
  UPDATE annotations a
  SET status = 'superseded', txid = pg_current_xact_id()
  FROM locked l
  WHERE a.id = :annotation_id::bigint AND a.image_id = l.id AND a.status = 'submitted'
  RETURNING a.id, a.claim_id
),
inserted AS (
  INSERT INTO annotations (image_id, dataset_id, source, author_id, claim_id, labels, shapes)
  SELECT l.id, l.dataset_id, 'human', :user_id::bigint, s.claim_id, :labels::text[],
    :shapes::jsonb
  FROM locked l
  CROSS JOIN superseded s
  RETURNING id, image_id, dataset_id, source, author_id, model_name, model_version, confidence,
    labels, shapes, created_at, status, reviewed_by, reviewed_at, review_comment
)
SELECT id::text, image_id::text, dataset_id::text, source, author_id::text, model_name,
  model_version, confidence, labels, shapes, created_at, status, reviewed_by::text, reviewed_at,
  review_comment
FROM inserted;
