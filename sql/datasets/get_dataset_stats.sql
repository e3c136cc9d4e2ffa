-- name: GetDatasetStats :one
-- Counts for dataset :id; no row when it does not exist or caller :caller_id (role :caller_role)
-- may not see it (may_see_dataset, a filter on the dataset row, so nothing is counted then).
-- Image statuses are image_status's (pending = images - in_progress - done). active_claims:
-- claims still holding their slot (active and unexpired), counted over claims_one_active_per_user.
-- annotators: human annotations per user, most first. One pass over the dataset's images and one
-- over its annotations: meant for a dashboard, not a hot path.
SELECT img.images,
  img.images - img.in_progress - img.done AS pending,
  img.in_progress,
  img.done,
  ann.human AS human_annotations,
  ann.machine AS machine_annotations,
  (SELECT count(*) FROM current_claims c
    WHERE c.dataset_id = d.id AND c.active AND c.expires_at > now())::integer AS active_claims,
  coalesce((
    SELECT jsonb_agg(jsonb_build_object('user_id', per_user.author_id::text,
      'annotations', per_user.n) ORDER BY per_user.n DESC, per_user.author_id)
    FROM (
      SELECT a.author_id, count(*)::integer AS n
      FROM annotations a
      WHERE a.dataset_id = d.id AND a.source = 'human'
      GROUP BY a.author_id
    ) per_user
  ), '[]'::jsonb) AS annotators
FROM datasets d
CROSS JOIN LATERAL (
  SELECT count(*)::integer AS images,
    count(*) FILTER (WHERE i.done)::integer AS done,
    count(*) FILTER (WHERE image_status(i.done, i.full_until) = 'in_progress')::integer
      AS in_progress
  FROM images i
  WHERE i.dataset_id = d.id
) img
CROSS JOIN LATERAL (
  SELECT count(*) FILTER (WHERE a.source = 'human')::integer AS human,
    count(*) FILTER (WHERE a.source = 'machine')::integer AS machine
  FROM annotations a
  WHERE a.dataset_id = d.id
) ann
WHERE d.id = :id::bigint
  AND may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text);
