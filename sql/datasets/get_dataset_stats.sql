-- name: GetDatasetStats :one
-- Counts for dataset $1; no row when it does not exist. Image statuses as in
-- sql/images/get_image.sql (pending = images - in_progress - done). active_claims: claims still
-- holding their slot (active and unexpired), counted over claims_one_active_per_user.
-- annotators: human annotations per user, most first. One pass over the dataset's images and one
-- over its annotations: meant for a dashboard, not a hot path.
SELECT img.images,
  img.images - img.in_progress - img.done AS pending,
  img.in_progress,
  img.done,
  ann.human AS human_annotations,
  ann.machine AS machine_annotations,
  (SELECT count(*) FROM claims c
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
    count(*) FILTER (
      WHERE NOT i.done
        AND cardinality(i.annotators)
          + (SELECT count(*) FROM unnest(i.leases) l WHERE l.expires_at > now())
          >= d.annotations_per_image
    )::integer AS in_progress
  FROM images i
  WHERE i.dataset_id = d.id
) img
CROSS JOIN LATERAL (
  SELECT count(*) FILTER (WHERE a.source = 'human')::integer AS human,
    count(*) FILTER (WHERE a.source = 'machine')::integer AS machine
  FROM annotations a
  WHERE a.dataset_id = d.id
) ann
WHERE d.id = $1::bigint;
