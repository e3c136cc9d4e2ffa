SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: lease; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.lease AS (
	claim_id bigint,
	user_id bigint,
	expires_at timestamp with time zone
);

--
-- Name: claim_expired_deliveries(bigint, bigint, bigint, bigint, timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.claim_expired_deliveries(dataset_id bigint, claim_id bigint, image_id bigint, user_id bigint, created_at timestamp with time zone, expires_at timestamp with time zone) RETURNS TABLE(webhook_id bigint, event_id bigint, event_type text, data jsonb)
    LANGUAGE sql ROWS 1
    AS $$
  SELECT s.webhook_id, e.id, 'claim.expired', e.data
  FROM (
    SELECT nextval('webhook_event_ids') AS id,
      jsonb_build_object('claim', webhook_claim(claim_id, dataset_id, image_id, user_id,
        created_at, expires_at)) AS data
    WHERE EXISTS (SELECT FROM webhook_subscribers('claim.expired', dataset_id))
  ) e
  CROSS JOIN webhook_subscribers('claim.expired', dataset_id) s
$$;

--
-- Name: completes_image(boolean, bigint[], bigint, smallint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.completes_image(done boolean, annotators bigint[], user_id bigint, k smallint) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  SELECT NOT done AND NOT (user_id = ANY (annotators)) AND cardinality(annotators) + 1 >= k
$$;

--
-- Name: dataset_completed_now(bigint, bigint[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.dataset_completed_now(dataset_id bigint, completed bigint[]) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
BEGIN
  -- Two keys: this lock's class, and the dataset id folded into 32 bits.
  PERFORM pg_advisory_xact_lock(72401190, (dataset_completed_now.dataset_id % 2147483647)::integer);
  RETURN NOT EXISTS (
    SELECT FROM images i
    WHERE i.dataset_id = dataset_completed_now.dataset_id AND NOT i.done
      AND i.id <> ALL (completed)
  );
END
$$;

--
-- Name: feed_horizon(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.feed_horizon() RETURNS xid8
    LANGUAGE sql STABLE
    AS $$
  SELECT coalesce(
    (
      SELECT min(x)
      FROM pg_snapshot_xip(pg_current_snapshot()) x
      WHERE NOT EXISTS (
        SELECT FROM pg_stat_activity p
        WHERE p.datname <> current_database()
          AND p.backend_xid::text::bigint = x::text::bigint % 4294967296
      )
    ),
    pg_snapshot_xmax(pg_current_snapshot())
  )
$$;

--
-- Name: has_free_slot(bigint[], public.lease[], smallint, bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.has_free_slot(annotators bigint[], leases public.lease[], k smallint, except_claim bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
  SELECT cardinality(annotators) + cardinality(live_leases(leases, except_claim)) < k
$$;

--
-- Name: holds_live_lease(public.lease[], bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.holds_live_lease(leases public.lease[], claim_id bigint) RETURNS boolean
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

--
-- Name: image_status(boolean, timestamp with time zone, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.image_status(done boolean, full_until timestamp with time zone, review text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
  SELECT CASE
    WHEN review = 'accepted' THEN 'accepted'
    WHEN review = 'waiting' THEN 'in_review'
    WHEN done THEN 'done'
    WHEN full_until > now() THEN 'in_progress'
    ELSE 'pending'
  END
$$;

--
-- Name: kept_leases(bigint, public.lease[], bigint, bigint[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.kept_leases(dataset_id bigint, leases public.lease[], except_claim bigint, ended bigint[]) RETURNS public.lease[]
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    AS $$
DECLARE
  l lease;
  kept lease[] := '{}';
BEGIN
  IF leases IS NOT NULL THEN
    FOREACH l IN ARRAY leases LOOP
      CONTINUE WHEN l.claim_id IS NOT DISTINCT FROM except_claim;
      IF l.expires_at > now() THEN
        kept := kept || l;
      ELSIF (ended IS NULL OR l.claim_id <> ALL (ended)) AND EXISTS (
        SELECT FROM current_claims c
        WHERE c.user_id = l.user_id AND c.dataset_id = kept_leases.dataset_id
          AND c.claim_id = l.claim_id AND c.active
      ) THEN
        kept := kept || l;
      END IF;
    END LOOP;
  END IF;
  RETURN kept;
END
$$;

--
-- Name: latest_predictions(bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.latest_predictions(image_id bigint) RETURNS TABLE(predictions jsonb)
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

--
-- Name: lease_full_until(integer, public.lease[], integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.lease_full_until(annotated integer, live public.lease[], k integer) RETURNS timestamp with time zone
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

--
-- Name: live_leases(public.lease[], bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.live_leases(leases public.lease[], except_claim bigint) RETURNS public.lease[]
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

--
-- Name: may_see_dataset(bigint, text, bigint, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.may_see_dataset(dataset_id bigint, access text, caller_id bigint, caller_role text) RETURNS TABLE(visible boolean)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
  SELECT true
  WHERE caller_role = 'admin' OR access = 'open' OR EXISTS (
    SELECT FROM dataset_members m
    WHERE m.dataset_id = may_see_dataset.dataset_id AND m.user_id = caller_id
  )
$$;

--
-- Name: named_images(bigint, bigint[], text[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.named_images(dataset_id bigint, image_ids bigint[], external_ids text[]) RETURNS TABLE(ord bigint, id bigint)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
  SELECT t.ord, coalesce(by_id.id, by_ext.id)
  FROM unnest(image_ids, external_ids) WITH ORDINALITY AS t (image_id, external_id, ord)
  LEFT JOIN images by_id ON t.image_id IS NOT NULL
    AND by_id.id = t.image_id AND by_id.dataset_id = named_images.dataset_id
  LEFT JOIN images by_ext ON t.external_id IS NOT NULL
    AND by_ext.dataset_id = named_images.dataset_id AND by_ext.external_id = t.external_id
$$;

--
-- Name: new_image_rows(bigint, bigint, text, json, json, json, json, json, json); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.new_image_rows(dataset_id bigint, caller_id bigint, caller_role text, external_ids json, uris json, widths json, heights json, priorities json, metadata_objects json) RETURNS TABLE(ord bigint, id bigint, external_id text, uri text, width integer, height integer, priority double precision, metadata jsonb, annotations_per_image smallint)
    LANGUAGE sql
    AS $$
  WITH dataset AS MATERIALIZED (
    SELECT d.annotations_per_image
    FROM datasets d
    WHERE d.id = new_image_rows.dataset_id
      AND EXISTS (SELECT FROM may_see_dataset(d.id, d.access, caller_id, caller_role))
    FOR SHARE OF d
  )
  SELECT t.ord, nextval((SELECT pg_get_serial_sequence('images', 'id'))), t.external_id, t.uri,
    t.width::integer, t.height::integer, t.priority::float8, t.metadata::jsonb,
    d.annotations_per_image
  FROM dataset d
  CROSS JOIN ROWS FROM (
      json_array_elements_text(external_ids), json_array_elements_text(uris),
      json_array_elements_text(widths), json_array_elements_text(heights),
      json_array_elements_text(priorities), json_array_elements(metadata_objects)
    ) WITH ORDINALITY AS t (external_id, uri, width, height, priority, metadata, ord)
  ORDER BY t.ord
$$;

--
-- Name: review_annotations(bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.review_annotations(image_id bigint) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
BEGIN
  RETURN (
    SELECT coalesce(jsonb_agg(jsonb_build_object(
      'id', a.id::text, 'image_id', a.image_id::text, 'dataset_id', a.dataset_id::text,
      'source', a.source, 'author_id', a.author_id::text, 'author_name', u.name,
      'model_name', a.model_name, 'model_version', a.model_version, 'confidence', a.confidence,
      'labels', to_jsonb(a.labels), 'shapes', a.shapes, 'created_at', a.created_at,
      'status', a.status, 'reviewed_by', a.reviewed_by::text, 'reviewed_at', a.reviewed_at,
      'review_comment', a.review_comment
    ) ORDER BY a.id), '[]'::jsonb)
    FROM annotations a
    JOIN users u ON u.id = a.author_id
    WHERE a.image_id = review_annotations.image_id AND a.source = 'human'
      AND a.status IN ('submitted', 'accepted')
  );
END
$$;

--
-- Name: review_selected(bigint, bigint, double precision); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.review_selected(dataset_id bigint, image_id bigint, rate double precision) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  SELECT rate > 0 AND (hashint8extended(image_id, dataset_id) & 9223372036854775807)::float8
    / 9223372036854775808.0 < rate
$$;

--
-- Name: rework_note(bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.rework_note(image_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
  SELECT jsonb_build_object('comment', a.review_comment, 'reviewed_by', a.reviewed_by::text,
    'reviewed_at', a.reviewed_at, 'rejected_annotation_id', a.id::text)
  FROM annotations a
  WHERE a.image_id = rework_note.image_id AND a.source = 'human' AND a.status = 'rejected'
  ORDER BY a.id DESC
  LIMIT 1
$$;

--
-- Name: settle_human_annotations(bigint, text, bigint, text, bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.settle_human_annotations(image_id bigint, new_status text, by_user bigint, comment text, except_id bigint) RETURNS bigint[]
    LANGUAGE plpgsql
    AS $$
DECLARE
  authors bigint[];
BEGIN
  WITH changed AS (
    UPDATE annotations a
    SET status = new_status, reviewed_by = by_user, reviewed_at = now(),
      review_comment = comment, txid = pg_current_xact_id()
    WHERE a.image_id = settle_human_annotations.image_id AND a.source = 'human'
      AND a.status IN ('submitted', 'accepted') AND a.id IS DISTINCT FROM except_id
    RETURNING a.author_id
  )
  SELECT coalesce(array_agg(DISTINCT author_id), '{}') INTO authors FROM changed;
  RETURN authors;
END
$$;

--
-- Name: taken_over_claims(bigint, bigint, public.lease, bigint[], public.lease[], public.lease[], smallint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taken_over_claims(dataset_id bigint, taker bigint, new_lease public.lease, annotators bigint[], leases public.lease[], live public.lease[], k smallint) RETURNS TABLE(user_id bigint, claim_id bigint, image_id bigint, claimed_at timestamp with time zone, expires_at timestamp with time zone)
    LANGUAGE sql ROWS 1
    AS $$
  SELECT c.user_id, c.claim_id, c.image_id, c.claimed_at, c.expires_at
  FROM unnest(taken_over_claims.leases) e
  JOIN current_claims c ON c.user_id = e.user_id AND c.claim_id = e.claim_id
  WHERE c.dataset_id = taken_over_claims.dataset_id AND e.user_id <> taker
    AND c.active AND c.expires_at <= now()
    AND NOT has_free_slot(taken_over_claims.annotators, live || new_lease, k, e.claim_id)
  FOR NO KEY UPDATE OF c SKIP LOCKED
$$;

--
-- Name: webhook_annotation(bigint, bigint, bigint, text, bigint, text, text, double precision, text[], jsonb, timestamp with time zone, text, bigint, timestamp with time zone, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.webhook_annotation(id bigint, image_id bigint, dataset_id bigint, source text, author_id bigint, model_name text, model_version text, confidence double precision, labels text[], shapes jsonb, created_at timestamp with time zone, status text, reviewed_by bigint, reviewed_at timestamp with time zone, review_comment text) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
  SELECT jsonb_build_object(
    'id', id::text, 'image_id', image_id::text, 'dataset_id', dataset_id::text,
    'source', source, 'author_id', author_id::text,
    'model', CASE WHEN model_name IS NOT NULL
      THEN jsonb_build_object('name', model_name, 'version', model_version) END,
    'confidence', confidence, 'labels', to_jsonb(labels), 'shapes', shapes,
    'created_at', webhook_time(created_at), 'status', status,
    'reviewed_by', reviewed_by::text, 'reviewed_at', webhook_time(reviewed_at),
    'review_comment', review_comment
  )
$$;

--
-- Name: webhook_claim(bigint, bigint, bigint, bigint, timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.webhook_claim(id bigint, dataset_id bigint, image_id bigint, user_id bigint, created_at timestamp with time zone, expires_at timestamp with time zone) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
  SELECT jsonb_build_object('id', id::text, 'dataset_id', dataset_id::text,
    'image_id', image_id::text, 'user_id', user_id::text,
    'created_at', webhook_time(created_at), 'expires_at', webhook_time(expires_at))
$$;

--
-- Name: webhook_image(bigint, bigint, text, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.webhook_image(id bigint, dataset_id bigint, external_id text, uri text) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
  SELECT jsonb_build_object('id', id::text, 'dataset_id', dataset_id::text,
    'external_id', external_id, 'uri', uri)
$$;

--
-- Name: webhook_subscribers(text, bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.webhook_subscribers(event_type text, dataset_id bigint) RETURNS TABLE(webhook_id bigint)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
  SELECT w.id
  FROM webhooks w
  WHERE w.enabled AND webhook_subscribers.event_type = ANY (w.events)
    AND (w.dataset_id IS NULL OR w.dataset_id = webhook_subscribers.dataset_id)
$$;

--
-- Name: webhook_time(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.webhook_time(t timestamp with time zone) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: annotations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.annotations (
    id bigint NOT NULL,
    image_id bigint NOT NULL,
    dataset_id bigint NOT NULL,
    source text NOT NULL,
    author_id bigint NOT NULL,
    claim_id bigint,
    model_name text,
    model_version text,
    confidence double precision,
    labels text[] DEFAULT '{}'::text[] NOT NULL,
    shapes jsonb DEFAULT '[]'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    txid xid8 DEFAULT pg_current_xact_id() NOT NULL,
    status text DEFAULT 'submitted'::text NOT NULL,
    reviewed_by bigint,
    reviewed_at timestamp with time zone,
    review_comment text,
    CONSTRAINT annotations_claim_human_only CHECK (((source = 'human'::text) OR (claim_id IS NULL))),
    CONSTRAINT annotations_confidence_check CHECK (((confidence >= (0)::double precision) AND (confidence <= (1)::double precision))),
    CONSTRAINT annotations_confidence_machine_only CHECK (((source = 'machine'::text) OR (confidence IS NULL))),
    CONSTRAINT annotations_model_complete CHECK (((model_name IS NULL) = (model_version IS NULL))),
    CONSTRAINT annotations_model_iff_machine CHECK (((source = 'machine'::text) = (model_name IS NOT NULL))),
    CONSTRAINT annotations_source_check CHECK ((source = ANY (ARRAY['human'::text, 'machine'::text]))),
    CONSTRAINT annotations_status_check CHECK ((status = ANY (ARRAY['submitted'::text, 'accepted'::text, 'rejected'::text, 'superseded'::text])))
);

--
-- Name: annotations_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.annotations ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.annotations_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: claim_ids; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.claim_ids
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: current_leases; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.current_leases (
    user_id bigint NOT NULL,
    dataset_id bigint NOT NULL,
    claim_id bigint NOT NULL,
    image_id bigint NOT NULL,
    claimed_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    active boolean NOT NULL,
    kind text NOT NULL
)
PARTITION BY LIST (kind);

--
-- Name: TABLE current_leases; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.current_leases IS 'Each holder''s latest lease per dataset and kind (annotate: current_claims; review: current_reviews).';

--
-- Name: ended_leases; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ended_leases (
    claim_id bigint NOT NULL,
    dataset_id bigint NOT NULL,
    image_id bigint NOT NULL,
    user_id bigint NOT NULL,
    claimed_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    ended_at timestamp with time zone NOT NULL,
    end_reason text NOT NULL,
    decision text,
    kind text NOT NULL
)
PARTITION BY LIST (kind);

--
-- Name: TABLE ended_leases; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.ended_leases IS 'Leases that ended, and how (annotate: ended_claims; review: ended_reviews).';

--
-- Name: leases; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.leases AS
 SELECT current_leases.kind,
    current_leases.claim_id AS id,
    current_leases.dataset_id,
    current_leases.image_id,
    current_leases.user_id,
    current_leases.claimed_at AS created_at,
    current_leases.expires_at,
    true AS active,
    NULL::timestamp with time zone AS ended_at,
    NULL::text AS end_reason,
    NULL::text AS decision
   FROM public.current_leases
  WHERE current_leases.active
UNION ALL
 SELECT ended_leases.kind,
    ended_leases.claim_id AS id,
    ended_leases.dataset_id,
    ended_leases.image_id,
    ended_leases.user_id,
    ended_leases.claimed_at AS created_at,
    ended_leases.expires_at,
    false AS active,
    ended_leases.ended_at,
    ended_leases.end_reason,
    ended_leases.decision
   FROM public.ended_leases;

--
-- Name: claims; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.claims AS
 SELECT leases.id,
    leases.dataset_id,
    leases.image_id,
    leases.user_id,
    leases.created_at,
    leases.expires_at,
    leases.active,
    leases.ended_at,
    leases.end_reason
   FROM public.leases
  WHERE (leases.kind = 'annotate'::text);

--
-- Name: current_claims; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.current_claims (
    user_id bigint NOT NULL,
    dataset_id bigint NOT NULL,
    claim_id bigint NOT NULL,
    image_id bigint NOT NULL,
    claimed_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    active boolean NOT NULL,
    kind text DEFAULT 'annotate'::text NOT NULL,
    CONSTRAINT current_claims_kind CHECK ((kind = 'annotate'::text))
)
WITH (fillfactor='50');

--
-- Name: current_reviews; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.current_reviews (
    user_id bigint NOT NULL,
    dataset_id bigint NOT NULL,
    claim_id bigint NOT NULL,
    image_id bigint NOT NULL,
    claimed_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    active boolean NOT NULL,
    kind text DEFAULT 'review'::text NOT NULL,
    CONSTRAINT current_reviews_kind CHECK ((kind = 'review'::text))
)
WITH (fillfactor='50');

--
-- Name: dataset_members; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.dataset_members (
    dataset_id bigint NOT NULL,
    user_id bigint NOT NULL,
    added_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: datasets; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.datasets (
    id bigint NOT NULL,
    name text NOT NULL,
    description text,
    labels text[] NOT NULL,
    annotations_per_image smallint DEFAULT 1 NOT NULL,
    claim_ttl_seconds integer DEFAULT 900 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    access text DEFAULT 'members'::text NOT NULL,
    review_rate double precision DEFAULT 0 NOT NULL,
    CONSTRAINT datasets_access_check CHECK ((access = ANY (ARRAY['members'::text, 'open'::text]))),
    CONSTRAINT datasets_annotations_per_image_check CHECK (((annotations_per_image >= 1) AND (annotations_per_image <= 10))),
    CONSTRAINT datasets_claim_ttl_seconds_check CHECK (((claim_ttl_seconds >= 30) AND (claim_ttl_seconds <= 86400))),
    CONSTRAINT datasets_labels_not_empty CHECK (((cardinality(labels) >= 1) AND (cardinality(labels) <= 1000))),
    CONSTRAINT datasets_review_rate_check CHECK (((review_rate >= (0)::double precision) AND (review_rate <= (1)::double precision)))
);

--
-- Name: datasets_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.datasets ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.datasets_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: ended_claims; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ended_claims (
    claim_id bigint NOT NULL,
    dataset_id bigint NOT NULL,
    image_id bigint NOT NULL,
    user_id bigint NOT NULL,
    claimed_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    ended_at timestamp with time zone NOT NULL,
    end_reason text NOT NULL,
    decision text,
    kind text DEFAULT 'annotate'::text NOT NULL,
    CONSTRAINT ended_claims_end_reason_check CHECK ((end_reason = ANY (ARRAY['completed'::text, 'released'::text, 'expired'::text, 'revoked'::text]))),
    CONSTRAINT ended_claims_kind CHECK ((kind = 'annotate'::text)),
    CONSTRAINT ended_claims_no_decision CHECK ((decision IS NULL))
);

--
-- Name: ended_reviews; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ended_reviews (
    claim_id bigint NOT NULL,
    dataset_id bigint NOT NULL,
    image_id bigint NOT NULL,
    user_id bigint NOT NULL,
    claimed_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    ended_at timestamp with time zone NOT NULL,
    end_reason text NOT NULL,
    decision text,
    kind text DEFAULT 'review'::text NOT NULL,
    CONSTRAINT ended_reviews_decision CHECK (((end_reason = 'completed'::text) = (decision IS NOT NULL))),
    CONSTRAINT ended_reviews_decision_check CHECK ((decision = ANY (ARRAY['accept'::text, 'fix'::text, 'reject'::text]))),
    CONSTRAINT ended_reviews_end_reason_check CHECK ((end_reason = ANY (ARRAY['completed'::text, 'released'::text, 'expired'::text, 'revoked'::text]))),
    CONSTRAINT ended_reviews_kind CHECK ((kind = 'review'::text))
);

--
-- Name: images; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.images (
    id bigint NOT NULL,
    dataset_id bigint NOT NULL,
    external_id text,
    uri text NOT NULL,
    width integer,
    height integer,
    priority double precision DEFAULT 0 NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    done boolean DEFAULT false NOT NULL,
    leases public.lease[] DEFAULT '{}'::public.lease[] NOT NULL,
    annotators bigint[] DEFAULT '{}'::bigint[] NOT NULL,
    full_until timestamp with time zone,
    annotations_per_image smallint DEFAULT 1 NOT NULL,
    skipped_by bigint[],
    review text,
    review_lease public.lease,
    review_since timestamp with time zone,
    rework_for bigint[] DEFAULT '{}'::bigint[] NOT NULL,
    rework_until timestamp with time zone,
    CONSTRAINT images_annotations_per_image_check CHECK (((annotations_per_image >= 1) AND (annotations_per_image <= 10))),
    CONSTRAINT images_height_check CHECK ((height > 0)),
    CONSTRAINT images_priority_check CHECK (((priority <> 'NaN'::double precision) AND (priority <> 'Infinity'::double precision) AND (priority <> '-Infinity'::double precision))),
    CONSTRAINT images_review_check CHECK ((review = ANY (ARRAY['waiting'::text, 'accepted'::text]))),
    CONSTRAINT images_review_lease_waiting CHECK (((review_lease IS NULL) OR (review = 'waiting'::text))),
    CONSTRAINT images_review_queue CHECK (((review = 'waiting'::text) = (review_since IS NOT NULL))),
    CONSTRAINT images_width_check CHECK ((width > 0))
)
WITH (fillfactor='85');

--
-- Name: images_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.images ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.images_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: review_ids; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.review_ids
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version character varying(128) NOT NULL
);

--
-- Name: users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.users (
    id bigint NOT NULL,
    name text NOT NULL,
    role text NOT NULL,
    api_key_hash bytea,
    external_subject text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    disabled_at timestamp with time zone,
    CONSTRAINT users_role_check CHECK ((role = ANY (ARRAY['admin'::text, 'reviewer'::text, 'annotator'::text, 'machine'::text])))
);

--
-- Name: users_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.users ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.users_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: webhook_attempts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.webhook_attempts (
    id bigint NOT NULL,
    webhook_id bigint NOT NULL,
    event_id bigint NOT NULL,
    attempt smallint NOT NULL,
    attempted_at timestamp with time zone NOT NULL,
    status_code smallint,
    latency_ms integer NOT NULL,
    error text,
    outcome text NOT NULL,
    next_attempt_at timestamp with time zone,
    CONSTRAINT webhook_attempts_outcome_check CHECK ((outcome = ANY (ARRAY['delivered'::text, 'retrying'::text, 'failed'::text, 'gone'::text])))
);

--
-- Name: webhook_attempts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.webhook_attempts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.webhook_attempts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: webhook_deliveries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.webhook_deliveries (
    webhook_id bigint NOT NULL,
    event_id bigint NOT NULL,
    event_type text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    attempts smallint DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now(),
    CONSTRAINT webhook_deliveries_due CHECK (((state = ANY (ARRAY['pending'::text, 'sending'::text])) = (next_attempt_at IS NOT NULL))),
    CONSTRAINT webhook_deliveries_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'sending'::text, 'delivered'::text, 'failed'::text])))
);

--
-- Name: webhook_event_ids; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.webhook_event_ids
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: webhooks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.webhooks (
    id bigint NOT NULL,
    url text NOT NULL,
    events text[] NOT NULL,
    dataset_id bigint,
    description text,
    enabled boolean DEFAULT true NOT NULL,
    secret bytea NOT NULL,
    previous_secret bytea,
    previous_secret_until timestamp with time zone,
    failing_since timestamp with time zone,
    disabled_reason text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT webhooks_disabled_reason CHECK ((enabled = (disabled_reason IS NULL))),
    CONSTRAINT webhooks_disabled_reason_check CHECK ((disabled_reason = ANY (ARRAY['gone'::text, 'admin'::text]))),
    CONSTRAINT webhooks_events_check CHECK ((cardinality(events) >= 1))
);

--
-- Name: webhooks_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.webhooks ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.webhooks_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: current_claims; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.current_leases ATTACH PARTITION public.current_claims FOR VALUES IN ('annotate');

--
-- Name: current_reviews; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.current_leases ATTACH PARTITION public.current_reviews FOR VALUES IN ('review');

--
-- Name: ended_claims; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ended_leases ATTACH PARTITION public.ended_claims FOR VALUES IN ('annotate');

--
-- Name: ended_reviews; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ended_leases ATTACH PARTITION public.ended_reviews FOR VALUES IN ('review');

--
-- Name: annotations annotations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.annotations
    ADD CONSTRAINT annotations_pkey PRIMARY KEY (id);

--
-- Name: current_claims current_claims_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.current_claims
    ADD CONSTRAINT current_claims_pkey PRIMARY KEY (user_id, dataset_id);

--
-- Name: current_reviews current_reviews_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.current_reviews
    ADD CONSTRAINT current_reviews_pkey PRIMARY KEY (user_id, dataset_id);

--
-- Name: dataset_members dataset_members_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dataset_members
    ADD CONSTRAINT dataset_members_pkey PRIMARY KEY (dataset_id, user_id);

--
-- Name: datasets datasets_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.datasets
    ADD CONSTRAINT datasets_name_key UNIQUE (name);

--
-- Name: datasets datasets_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.datasets
    ADD CONSTRAINT datasets_pkey PRIMARY KEY (id);

--
-- Name: ended_claims ended_claims_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ended_claims
    ADD CONSTRAINT ended_claims_pkey PRIMARY KEY (claim_id);

--
-- Name: ended_reviews ended_reviews_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ended_reviews
    ADD CONSTRAINT ended_reviews_pkey PRIMARY KEY (claim_id);

--
-- Name: images images_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.images
    ADD CONSTRAINT images_pkey PRIMARY KEY (id);

--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

--
-- Name: users users_api_key_hash_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_api_key_hash_key UNIQUE (api_key_hash);

--
-- Name: users users_external_subject_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_external_subject_key UNIQUE (external_subject);

--
-- Name: users users_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_name_key UNIQUE (name);

--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

--
-- Name: webhook_attempts webhook_attempts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_attempts
    ADD CONSTRAINT webhook_attempts_pkey PRIMARY KEY (id);

--
-- Name: webhook_deliveries webhook_deliveries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (webhook_id, event_id);

--
-- Name: webhooks webhooks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhooks
    ADD CONSTRAINT webhooks_pkey PRIMARY KEY (id);

--
-- Name: annotations_current_prediction_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX annotations_current_prediction_key ON public.annotations USING btree (image_id, model_name) WHERE ((source = 'machine'::text) AND (status = 'submitted'::text));

--
-- Name: annotations_dataset_source_txid_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX annotations_dataset_source_txid_id_idx ON public.annotations USING btree (dataset_id, source, txid, id);

--
-- Name: annotations_image_id_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX annotations_image_id_id_idx ON public.annotations USING btree (image_id, id);

--
-- Name: ended_reviews_dataset_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ended_reviews_dataset_id_idx ON public.ended_reviews USING btree (dataset_id);

--
-- Name: images_claim_queue_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX images_claim_queue_idx ON public.images USING btree (dataset_id, priority DESC, id) WHERE (NOT done);

--
-- Name: images_dataset_external_id_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX images_dataset_external_id_key ON public.images USING btree (dataset_id, external_id) WHERE (external_id IS NOT NULL);

--
-- Name: images_dataset_id_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX images_dataset_id_id_idx ON public.images USING btree (dataset_id, id);

--
-- Name: images_review_queue_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX images_review_queue_idx ON public.images USING btree (dataset_id, priority DESC, review_since, id) WHERE (review = 'waiting'::text);

--
-- Name: images_rework_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX images_rework_idx ON public.images USING gin (rework_for) WITH (fastupdate=off) WHERE (rework_until IS NOT NULL);

--
-- Name: webhook_attempts_webhook_id_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhook_attempts_webhook_id_id_idx ON public.webhook_attempts USING btree (webhook_id, id);

--
-- Name: webhook_deliveries_due_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhook_deliveries_due_idx ON public.webhook_deliveries USING btree (webhook_id, next_attempt_at) WHERE (state = ANY (ARRAY['pending'::text, 'sending'::text]));

--
-- Name: webhook_deliveries_ended_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhook_deliveries_ended_idx ON public.webhook_deliveries USING btree (created_at) WHERE (state = ANY (ARRAY['delivered'::text, 'failed'::text]));

--
-- Name: annotations annotations_author_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.annotations
    ADD CONSTRAINT annotations_author_id_fkey FOREIGN KEY (author_id) REFERENCES public.users(id);

--
-- Name: annotations annotations_image_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.annotations
    ADD CONSTRAINT annotations_image_id_fkey FOREIGN KEY (image_id) REFERENCES public.images(id) ON DELETE CASCADE;

--
-- Name: annotations annotations_reviewed_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.annotations
    ADD CONSTRAINT annotations_reviewed_by_fkey FOREIGN KEY (reviewed_by) REFERENCES public.users(id);

--
-- Name: current_claims current_claims_dataset_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.current_claims
    ADD CONSTRAINT current_claims_dataset_id_fkey FOREIGN KEY (dataset_id) REFERENCES public.datasets(id) ON DELETE CASCADE;

--
-- Name: current_claims current_claims_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.current_claims
    ADD CONSTRAINT current_claims_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);

--
-- Name: current_reviews current_reviews_dataset_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.current_reviews
    ADD CONSTRAINT current_reviews_dataset_id_fkey FOREIGN KEY (dataset_id) REFERENCES public.datasets(id) ON DELETE CASCADE;

--
-- Name: current_reviews current_reviews_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.current_reviews
    ADD CONSTRAINT current_reviews_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);

--
-- Name: dataset_members dataset_members_dataset_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dataset_members
    ADD CONSTRAINT dataset_members_dataset_id_fkey FOREIGN KEY (dataset_id) REFERENCES public.datasets(id) ON DELETE CASCADE;

--
-- Name: dataset_members dataset_members_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dataset_members
    ADD CONSTRAINT dataset_members_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

--
-- Name: images images_dataset_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.images
    ADD CONSTRAINT images_dataset_id_fkey FOREIGN KEY (dataset_id) REFERENCES public.datasets(id) ON DELETE CASCADE;

--
-- Name: webhooks webhooks_dataset_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhooks
    ADD CONSTRAINT webhooks_dataset_id_fkey FOREIGN KEY (dataset_id) REFERENCES public.datasets(id) ON DELETE CASCADE;

--
-- PostgreSQL database dump complete
--

--
-- Dbmate schema migrations
--

INSERT INTO public.schema_migrations (version) VALUES
    ('20261125090000'),
    ('20261125091000'),
    ('20261125092000'),
    ('20261202020000'),
    ('20261202021000'),
    ('20261202022000'),
    ('20261206020000'),
    ('20261206021000'),
    ('20261206024049'),
    ('20261206024325'),
    ('20261206030357'),
    ('20261206040446'),
    ('20261206080000'),
    ('20261206100000'),
    ('20261206160000'),
    ('20261206235500'),
    ('20261207020000'),
    ('20261207040000'),
    ('20261207160000');
