-- migrate:up
-- The lease rules, the claim's predictions and the membership rule, rewritten so that calling
-- them costs the claim and submit statements less; each still says exactly what it said before.
-- A `LANGUAGE sql` function whose body holds a subquery is never inlined: each call runs its own
-- small plan, which cost the 14-submit batch about 9 % of its time and the claim batch 3 %
-- (bench/experiments/batch_latency.ts, decision 0019). PL/pgSQL keeps its plans for the session
-- and walks the one- or two-element lease arrays without a plan at all.

-- The leases that still hold a slot (unexpired), leaving out the claim `except_claim` (null:
-- none). Every statement that writes leases writes this, so expired leases are pruned on write.
CREATE OR REPLACE FUNCTION live_leases(leases lease[], except_claim bigint) RETURNS lease[]
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
  l lease;
  live lease[] := '{}';
BEGIN
  IF leases IS NOT NULL THEN
    FOREACH l IN ARRAY leases LOOP
      IF l.expires_at > now() AND l.claim_id IS DISTINCT FROM except_claim THEN
        live := live || l;
      END IF;
    END LOOP;
  END IF;
  RETURN live;
END
$$;

-- Whether claim `claim_id` still holds an unexpired lease on the image.
CREATE OR REPLACE FUNCTION holds_live_lease(leases lease[], claim_id bigint) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
  l lease;
BEGIN
  IF leases IS NOT NULL THEN
    FOREACH l IN ARRAY leases LOOP
      IF l.claim_id = holds_live_lease.claim_id AND l.expires_at > now() THEN
        RETURN true;
      END IF;
    END LOOP;
  END IF;
  RETURN false;
END
$$;

-- Exactly when an image with `annotated` human annotations and the live leases `live` stops
-- having every remaining slot leased, or null while a slot is free: the expiry at which the
-- leases left fall below the k - annotated slots: the earliest expiry when the leases fill
-- exactly the slots left (every claim at k = 1: no plan), a later one when there are more of
-- them (k lowered while they were held).
CREATE OR REPLACE FUNCTION lease_full_until(annotated integer, live lease[], k integer)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
  l lease;
  earliest timestamptz;
BEGIN
  IF annotated < k AND annotated + cardinality(live) >= k THEN
    IF cardinality(live) = k - annotated THEN
      FOREACH l IN ARRAY live LOOP
        IF earliest IS NULL OR l.expires_at < earliest THEN
          earliest := l.expires_at;
        END IF;
      END LOOP;
      RETURN earliest;
    END IF;
    RETURN (
      SELECT u.expires_at FROM unnest(live) u
      ORDER BY u.expires_at
      OFFSET cardinality(live) - (k - annotated)
      LIMIT 1
    );
  END IF;
  RETURN NULL;
END
$$;

-- The image's current prediction per model name (annotations_current_prediction_key: one per
-- model), ordered by model name, as the JSON objects the claim answers carry to pre-fill the
-- editor: one row, read as `LEFT JOIN LATERAL latest_predictions(i.id) p ON true`. A set-returning
-- SQL function is inlined into the calling statement (one subquery of its plan); the scalar one it
-- replaces ran as a function call per claim, 7 % of the claim batch's time. Inlining needs it to
-- stay LANGUAGE sql, STABLE and not STRICT (tests/rules_sql_test.ts checks).
DROP FUNCTION latest_predictions(bigint);
CREATE FUNCTION latest_predictions(image_id bigint) RETURNS TABLE (predictions jsonb)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.model_name), '[]'::jsonb)
  FROM (
    SELECT a.id::text, a.image_id::text, a.dataset_id::text, a.source, a.author_id::text,
      a.model_name, a.model_version, a.confidence, a.labels, a.shapes, a.created_at, a.status,
      a.reviewed_by::text, a.reviewed_at, a.review_comment
    FROM annotations a
    WHERE a.image_id = latest_predictions.image_id AND a.source = 'machine'
      AND a.status = 'submitted'
  ) p
$$;

-- Whether a caller (caller_id, with role caller_role) may see dataset dataset_id, whose
-- `access` the caller passes from the row it read: admins see every dataset, everyone an `open`
-- one, a dataset's members a `members` one. One row (true) when it may, none when not: read as
-- `EXISTS (SELECT FROM may_see_dataset(...))`, which PostgreSQL inlines into the calling
-- statement as a subquery. The PL/pgSQL function it replaces (decision 0016) cost each call a
-- function call: 4 % of the 14-submit batch's time and 3 % of the claim batch's on PostgreSQL 18,
-- 2 % and 6 % on 15 (decision 0019). Inlining needs it to stay LANGUAGE sql, STABLE, not STRICT
-- and not SECURITY DEFINER (tests/rules_sql_test.ts checks).
DROP FUNCTION may_see_dataset(bigint, text, bigint, text);
CREATE FUNCTION may_see_dataset(dataset_id bigint, access text, caller_id bigint,
  caller_role text)
RETURNS TABLE (visible boolean)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT true
  WHERE caller_role = 'admin' OR access = 'open' OR EXISTS (
    SELECT FROM dataset_members m
    WHERE m.dataset_id = may_see_dataset.dataset_id AND m.user_id = caller_id
  )
$$;

-- migrate:down
DROP FUNCTION may_see_dataset(bigint, text, bigint, text);
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
DROP FUNCTION latest_predictions(bigint);
CREATE FUNCTION latest_predictions(image_id bigint) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.model_name), '[]'::jsonb)
  FROM (
    SELECT a.id::text, a.image_id::text, a.dataset_id::text, a.source, a.author_id::text,
      a.model_name, a.model_version, a.confidence, a.labels, a.shapes, a.created_at, a.status,
      a.reviewed_by::text, a.reviewed_at, a.review_comment
    FROM annotations a
    WHERE a.image_id = latest_predictions.image_id AND a.source = 'machine'
      AND a.status = 'submitted'
  ) p
$$;
CREATE OR REPLACE FUNCTION lease_full_until(annotated integer, live lease[], k integer)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN annotated < k AND annotated + cardinality(live) >= k
    THEN (
      SELECT l.expires_at FROM unnest(live) l
      ORDER BY l.expires_at
      OFFSET cardinality(live) - (k - annotated)
      LIMIT 1
    )
  END
$$;
CREATE OR REPLACE FUNCTION holds_live_lease(leases lease[], claim_id bigint) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT EXISTS (
    SELECT FROM unnest(leases) l WHERE l.claim_id = holds_live_lease.claim_id
      AND l.expires_at > now()
  )
$$;
CREATE OR REPLACE FUNCTION live_leases(leases lease[], except_claim bigint) RETURNS lease[]
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(array_agg(l), '{}')
  FROM unnest(leases) l
  WHERE l.expires_at > now() AND l.claim_id IS DISTINCT FROM except_claim
$$;
