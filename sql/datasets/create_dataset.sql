-- name: CreateDataset :one
-- A taken name returns no row instead of raising, so the caller answers 409 cleanly. Admins only
-- create datasets, and an admin sees every dataset (may_see_dataset): nothing to check here.
INSERT INTO datasets (name, description, labels, annotations_per_image, claim_ttl_seconds,
  access, review_rate)
VALUES (:name::text, :description::text, :labels::text[], :annotations_per_image::smallint,
  :claim_ttl_seconds::integer, :access::text, :review_rate::float8)
ON CONFLICT (name) DO NOTHING
RETURNING id::text, name, description, labels, annotations_per_image, claim_ttl_seconds, access,
  review_rate, created_at;
