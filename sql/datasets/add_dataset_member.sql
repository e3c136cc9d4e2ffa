-- name: AddDatasetMember :one
-- Makes user :user_id a member of dataset :dataset_id; already one, nothing changes (added_at
-- stays the first time's). One row always: whether the dataset (as caller :caller_id, role
-- :caller_role, sees it: may_see_dataset) and the user exist, so the caller answers 404 for the
-- right one. ON CONFLICT DO NOTHING: two concurrent adds both succeed.
WITH dataset AS MATERIALIZED (
  SELECT d.id
  FROM datasets d
  WHERE d.id = :dataset_id::bigint
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
),
member AS MATERIALIZED (
  SELECT u.id FROM users u WHERE u.id = :user_id::bigint
),
added AS (
  INSERT INTO dataset_members (dataset_id, user_id)
  SELECT d.id, u.id
  FROM dataset d
  CROSS JOIN member u
  ON CONFLICT (dataset_id, user_id) DO NOTHING
)
SELECT EXISTS (SELECT FROM dataset) AS dataset_found, EXISTS (SELECT FROM member) AS user_found;
