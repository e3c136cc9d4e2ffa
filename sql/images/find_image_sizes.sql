-- name: FindImageSizes :many
-- The known sizes of the images a batch of predictions names (by id or by external_id), so
-- shapes can be checked against them before anything is written. An image with only one
-- dimension known (registered before both-or-neither was required) is returned too: each known
-- dimension is checked on its own, as create_machine_annotation.sql does. None when caller
-- :caller_id (role :caller_role) may not see the dataset (may_see_dataset, an InitPlan).
SELECT i.id::text, i.external_id, i.width, i.height
FROM images i
WHERE i.dataset_id = :dataset_id::bigint
  AND (i.id = ANY (:ids::bigint[]) OR i.external_id = ANY (:external_ids::text[]))
  AND (i.width IS NOT NULL OR i.height IS NOT NULL)
  AND EXISTS (
    SELECT FROM datasets d
    WHERE d.id = :dataset_id::bigint
      AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint,
        :caller_role::text))
  );
