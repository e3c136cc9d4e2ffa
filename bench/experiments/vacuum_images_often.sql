-- Experiment (bench --db-setup): autovacuum on images every 5,000 dead rows instead of at 20% of
-- the table (200,000 rows at 1M images). Done images leave the claim queue's partial index only
-- logically: until a vacuum removes their entries, every claim steps over them at the head of
-- images_claim_queue_idx, so the claim's cost grows with the images done since the last vacuum.
ALTER TABLE images SET (
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 5000,
  autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE claims SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
