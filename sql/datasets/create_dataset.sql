-- name: CreateDataset :one
-- A taken name returns no row instead of raising, so the caller answers 409 cleanly.
INSERT INTO datasets (name, description, labels, annotations_per_image, claim_ttl_seconds)
VALUES (:name::text, :description::text, :labels::text[], :annotations_per_image::smallint,
  :claim_ttl_seconds::integer)
ON CONFLICT (name) DO NOTHING
RETURNING id::text, name, description, labels, annotations_per_image, claim_ttl_seconds, created_at;
