-- After the cycles: what the claims and annotations tables say about dataset $1. Every claim
-- ended 'completed' and no image was handed out twice (k = 1, leases far longer than the run):
-- claims = images_claimed = completed = human annotations = images_annotated.
SELECT
  (SELECT count(*) FROM claims WHERE dataset_id = $1::bigint)::integer AS claims,
  (SELECT count(DISTINCT image_id) FROM claims WHERE dataset_id = $1::bigint)::integer
    AS images_claimed,
  (SELECT count(*) FROM claims WHERE dataset_id = $1::bigint AND end_reason = 'completed')::integer
    AS completed,
  (SELECT count(*) FROM annotations WHERE dataset_id = $1::bigint AND source = 'human')::integer
    AS annotations,
  (SELECT count(DISTINCT image_id) FROM annotations
    WHERE dataset_id = $1::bigint AND source = 'human')::integer AS images_annotated;
