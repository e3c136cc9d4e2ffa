-- Setup only (not measured): images number $3 to $4 of dataset $1, with random priorities, in
-- the row shape the ingest section sends through registerImages (bench/lib/rows.ts). $2 tags
-- the URIs and external ids.
-- The target table is substituted by the caller: images, or naive_images.
INSERT INTO %TABLE% (dataset_id, external_id, uri, width, height, priority, metadata)
SELECT $1::bigint,
  $2::text || '-' || g,
  's3://bench-bucket/' || $2::text || '/frames/' || lpad(g::text, 8, '0') || '.jpg',
  1920,
  CASE WHEN g % 4 = 0 THEN 1200 ELSE 1080 END,
  random(),
  jsonb_build_object('camera', 'cam-' || g % 8, 'frame', g,
    'split', CASE WHEN g % 10 = 0 THEN 'val' ELSE 'train' END)
FROM generate_series($3::integer, $4::integer) AS g;
