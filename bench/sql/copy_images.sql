-- The raw ceiling for registerImages: COPY the same rows into the same table (so the same
-- indexes, constraints and foreign key) from the client, in one stream.
COPY images (dataset_id, external_id, uri, width, height, priority, metadata) FROM STDIN
