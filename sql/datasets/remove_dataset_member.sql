-- name: RemoveDatasetMember :one
-- Takes user :user_id off dataset :dataset_id's members; not one, nothing changes. One row always:
-- whether the dataset (as caller :caller_id, role :caller_role, sees it: may_see_dataset) and the
-- user exist, so the caller answers 404 for the right one. The user's live claim and review lease
-- there, if they can no longer see the dataset, are ended by sql/leases/revoke_leases.sql, run
-- next in the same transaction: a statement of its own, so that it reads the membership as this
-- one left it.
WITH dataset AS MATERIALIZED (
  SELECT d.id
  FROM datasets d
  WHERE d.id = :dataset_id::bigint
    AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, :caller_id::bigint, :caller_role::text))
),
member AS MATERIALIZED (
  SELECT u.id FROM users u WHERE u.id = :user_id::bigint
),
removed AS (
  DELETE FROM dataset_members m
  USING dataset d
  WHERE m.dataset_id = d.id AND m.user_id = :user_id::bigint
)
SELECT EXISTS (SELECT FROM dataset) AS dataset_found, EXISTS (SELECT FROM member) AS user_found;
