-- Experiment (bench --db-setup): claims and annotations without their foreign keys to datasets.
-- Each of those checks takes FOR KEY SHARE on the dataset's one row; with every concurrent claim
-- and submit locking that same row, PostgreSQL builds a new MultiXact (and WAL-logs a tuple
-- lock) per check. The image foreign key (whose row carries dataset_id) and the cascade from
-- datasets through images remain.
ALTER TABLE claims DROP CONSTRAINT claims_dataset_id_fkey;
ALTER TABLE annotations DROP CONSTRAINT annotations_dataset_id_fkey;
