-- Experiment (bench --db-setup): claims and annotations keep only their foreign key to images.
-- Upper bound of what the per-row foreign-key checks cost the cycle (7 per cycle: claims ->
-- datasets, images, users; annotations -> images, datasets, users, claims; 2 remain here).
ALTER TABLE claims DROP CONSTRAINT claims_dataset_id_fkey;
ALTER TABLE claims DROP CONSTRAINT claims_user_id_fkey;
ALTER TABLE annotations DROP CONSTRAINT annotations_dataset_id_fkey;
ALTER TABLE annotations DROP CONSTRAINT annotations_author_id_fkey;
ALTER TABLE annotations DROP CONSTRAINT annotations_claim_id_fkey;
