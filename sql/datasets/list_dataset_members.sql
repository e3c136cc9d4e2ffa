-- name: ListDatasetMembers :many
-- The members of dataset :dataset_id, first added first, over dataset_members' primary key. No
-- rows also when the dataset does not exist or caller :caller_id (role :caller_role) may not see
-- it (may_see_dataset): the caller tells those apart from a dataset without members.
SELECT m.user_id::text, u.name, u.role, m.added_at
FROM datasets d
JOIN dataset_members m ON m.dataset_id = d.id
JOIN users u ON u.id = m.user_id
WHERE d.id = :dataset_id::bigint
  AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
ORDER BY m.added_at, m.user_id;
