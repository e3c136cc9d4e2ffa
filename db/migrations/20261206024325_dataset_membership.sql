-- migrate:up
-- Dataset membership: who may see a dataset besides the admins.
--
-- datasets.access is 'members' (only the dataset's members, and admins) or 'open' (every user,
-- as before this migration). Datasets that exist now stay 'open', so nothing changes on upgrade;
-- a dataset created afterwards is 'members' unless its creator says otherwise. Adding the column
-- with a constant default is a catalogue change (no table rewrite); the default then changes
-- for rows inserted from now on.
ALTER TABLE datasets
  ADD COLUMN access text NOT NULL DEFAULT 'open' CHECK (access IN ('members', 'open'));
ALTER TABLE datasets ALTER COLUMN access SET DEFAULT 'members';

-- The members of each dataset. Every check is "is user u a member of dataset d", one lookup on
-- the primary key; listDatasetMembers reads a dataset's members by its first column. No index
-- leads with user_id: no statement asks for a user's datasets (listDatasets tests each dataset
-- it lists), and users are disabled, never deleted, so the cascade below never has to find them.
CREATE TABLE dataset_members (
  dataset_id bigint NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
  user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  added_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (dataset_id, user_id)
);

-- The one rule of who sees a dataset, applied by every statement that reads or writes a
-- dataset's rows (the dataset itself, its images, claims, annotations, members): admins see
-- every dataset, everyone sees an 'open' one, and a member sees a 'members' one. A statement
-- that finds the rule false answers exactly as for a dataset that does not exist, so a caller
-- cannot tell a dataset it may not see from one that is not there.
--
-- The caller passes the dataset's access (it has read the dataset row: the claim and submit
-- statements read it anyway), so an admin or an open dataset costs no lookup at all and a
-- 'members' dataset one, on dataset_members' primary key. A statement applies it once (to its
-- dataset row, or once per caller in a batch), never per image it scans.
--
-- PL/pgSQL, not SQL: a LANGUAGE sql function with a subquery is never inlined, and PostgreSQL
-- before 18 plans its body again in every statement that calls it. A one-row statement on
-- PostgreSQL 15 takes 3-5 µs without the rule, 11-13 µs with this function (it keeps its plan for
-- the session), 37-56 µs with the same body in SQL (docs/decisions/0016-dataset-membership-rule.md,
-- bench/experiments/membership_rule.ts).
CREATE FUNCTION may_see_dataset(dataset_id bigint, access text, caller_id bigint,
  caller_role text)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
  RETURN caller_role = 'admin' OR access = 'open' OR EXISTS (
    SELECT FROM dataset_members m
    WHERE m.dataset_id = may_see_dataset.dataset_id AND m.user_id = caller_id
  );
END
$$;

-- 'revoked': the claim ended because its holder may no longer see the dataset (removed from
-- its members, or the dataset turned 'members' without them). A new CHECK scans ended_claims
-- once, under this migration's lock: about a second per million claims.
ALTER TABLE ended_claims
  DROP CONSTRAINT ended_claims_end_reason_check,
  ADD CONSTRAINT ended_claims_end_reason_check
    CHECK (end_reason IN ('completed', 'released', 'expired', 'revoked'));

-- migrate:down
-- A revoked claim was given back without an annotation: what 'released' says.
UPDATE ended_claims SET end_reason = 'released' WHERE end_reason = 'revoked';
ALTER TABLE ended_claims
  DROP CONSTRAINT ended_claims_end_reason_check,
  ADD CONSTRAINT ended_claims_end_reason_check
    CHECK (end_reason IN ('completed', 'released', 'expired'));
DROP FUNCTION may_see_dataset(bigint, text, bigint, text);
DROP TABLE dataset_members;
ALTER TABLE datasets DROP COLUMN access;
