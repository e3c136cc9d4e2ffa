-- name: CreateDataset :one
-- A taken name returns no row instead of raising, so the caller answers 409 cleanly.
INSERT INTO datasets (name, description, labels, annotations_per_image, claim_ttl_seconds)
VALUES ($1::text, $2::text, $3::text[], $4::smallint, $5::integer)
ON CONFLICT (name) DO NOTHING
RETURNING id::text, name, description, labels, annotations_per_image, claim_ttl_seconds, created_at;
