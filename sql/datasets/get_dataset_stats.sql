-- name: GetDatasetStats :one
-- Counts for dataset :id, for several callers at once (:caller_ids with :caller_roles, in pairs):
-- the counts are a pass over the whole dataset, so the server sends the calls for one dataset that
-- arrive while its aggregation runs as the next statement (operations/datasets.ts). visible: per
-- caller, in order, whether they may see the dataset (may_see_dataset); no row when it does not
-- exist or none of them may see it (nothing is counted then).
-- Image statuses are image_status's, which add up to images; rejected: images a reviewer sent back
-- that wait for their rework (also counted as pending or in_progress). active_claims: claims still
-- holding their slot (active and unexpired). annotators: per user, human annotations (not
-- counting versions they amended away), accepted and rejected ones, and the acceptance rate
-- (accepted / (accepted + rejected), null before any review), most annotations first. reviewers:
-- completed reviews per reviewer, by decision, most first. One pass over the dataset's images,
-- one over its annotations and one over its ended reviews: meant for a dashboard, not a hot path
-- (at 1,000,000 images 0.4-0.5 s of one core, bench/experiments/stats_herd.ts).
WITH dataset AS MATERIALIZED (
  SELECT d.id, v.visible
  FROM datasets d
  CROSS JOIN LATERAL (
    SELECT array_agg(EXISTS (SELECT FROM may_see_dataset(d.id, d.access, c.id, c.role))
        ORDER BY c.ord) AS visible
    FROM unnest(:caller_ids::bigint[], :caller_roles::text[]) WITH ORDINALITY AS c (id, role, ord)
  ) v
  WHERE d.id = :id::bigint AND true = ANY (v.visible)
)
SELECT d.visible, img.images, img.pending, img.in_progress, img.done, img.in_review, img.accepted,
  img.rejected,
  ann.human AS human_annotations,
  ann.machine AS machine_annotations,
  (SELECT count(*) FROM current_claims c
    WHERE c.dataset_id = d.id AND c.active AND c.expires_at > now())::integer AS active_claims,
  coalesce((
    SELECT jsonb_agg(jsonb_build_object('user_id', per_user.author_id::text,
      'annotations', per_user.n, 'accepted', per_user.accepted, 'rejected', per_user.rejected,
      'acceptance_rate', CASE WHEN per_user.accepted + per_user.rejected > 0
        THEN per_user.accepted::float8 / (per_user.accepted + per_user.rejected) END)
      ORDER BY per_user.n DESC, per_user.author_id)
    FROM (
      SELECT a.author_id,
        -- An amendment supersedes its author's own row with no reviewer: not a second one.
        count(*) FILTER (WHERE NOT (a.status = 'superseded' AND a.reviewed_by IS NULL))::integer
          AS n,
        count(*) FILTER (WHERE a.status = 'accepted')::integer AS accepted,
        count(*) FILTER (WHERE a.status = 'rejected')::integer AS rejected
      FROM annotations a
      WHERE a.dataset_id = d.id AND a.source = 'human'
      GROUP BY a.author_id
    ) per_user
  ), '[]'::jsonb) AS annotators,
  coalesce((
    SELECT jsonb_agg(jsonb_build_object('user_id', per_reviewer.user_id::text,
      'reviews', per_reviewer.n, 'accepted', per_reviewer.accepted, 'fixed', per_reviewer.fixed,
      'rejected', per_reviewer.rejected) ORDER BY per_reviewer.n DESC, per_reviewer.user_id)
    FROM (
      SELECT e.user_id, count(*)::integer AS n,
        count(*) FILTER (WHERE e.decision = 'accept')::integer AS accepted,
        count(*) FILTER (WHERE e.decision = 'fix')::integer AS fixed,
        count(*) FILTER (WHERE e.decision = 'reject')::integer AS rejected
      FROM ended_reviews e
      WHERE e.dataset_id = d.id AND e.end_reason = 'completed'
      GROUP BY e.user_id
    ) per_reviewer
  ), '[]'::jsonb) AS reviewers
FROM dataset d
CROSS JOIN LATERAL (
  SELECT count(*)::integer AS images,
    count(*) FILTER (WHERE s.status = 'pending')::integer AS pending,
    count(*) FILTER (WHERE s.status = 'in_progress')::integer AS in_progress,
    count(*) FILTER (WHERE s.status = 'done')::integer AS done,
    count(*) FILTER (WHERE s.status = 'in_review')::integer AS in_review,
    count(*) FILTER (WHERE s.status = 'accepted')::integer AS accepted,
    count(*) FILTER (WHERE s.rework)::integer AS rejected
  FROM images i
  CROSS JOIN LATERAL (
    SELECT image_status(i.done, i.full_until, i.review) AS status,
      NOT i.done AND cardinality(i.rework_for) > 0 AS rework
  ) s
  WHERE i.dataset_id = d.id
) img
CROSS JOIN LATERAL (
  SELECT count(*) FILTER (WHERE a.source = 'human')::integer AS human,
    count(*) FILTER (WHERE a.source = 'machine')::integer AS machine
  FROM annotations a
  WHERE a.dataset_id = d.id
) ann;
