/**
 * The SQL rules the claim and submit statements call per row, written for speed (PL/pgSQL, inlined
 * set-returning functions; db/migrations/20261206080000_cycle_rules_without_call_overhead.sql):
 * they answer exactly what their plain definitions say, and the inlined ones stay inlined.
 */
import assert from "node:assert/strict";
import { rawMany, withDb } from "./harness.ts";

interface Case {
  i: number;
  /** null: a null array. Each lease expires `in` seconds from now (negative: expired). */
  leases: { claim_id: number; user_id: number; in: number }[] | null;
  except: number | null;
  claim: number;
  annotated: number;
  k: number;
}

/** A seeded generator, so a failure names a case that comes back. */
function cases(n: number, seed = 20261206): Case[] {
  let s = seed;
  const next = (m: number) => {
    s = (s * 1103515245 + 12345) % 2147483648;
    // The high bits: an LCG's low bits repeat with a short period.
    return Math.floor(s / 65536) % m;
  };
  return Array.from({ length: n }, (_, i) => {
    const leases = next(10) === 0 ? null : Array.from({ length: next(5) }, () => ({
      claim_id: 1 + next(4),
      user_id: 1 + next(3),
      // Ties and both sides of now: -60, -1, 1, 60, 60, 3600 seconds.
      in: [-60, -1, 1, 60, 60, 3600][next(6)],
    }));
    return {
      i,
      leases,
      except: next(3) === 0 ? null : 1 + next(4),
      claim: 1 + next(4),
      annotated: next(4),
      k: 1 + next(4),
    };
  });
}

withDb(
  "live_leases, holds_live_lease and lease_full_until answer as their definitions",
  async (h) => {
    const all = cases(600);
    const rows = await rawMany<{
      i: number;
      live: string;
      live_ref: string;
      holds: boolean;
      holds_ref: boolean;
      full: Date | null;
      full_ref: Date | null;
    }>(
      h.db,
      `WITH c AS (
      SELECT (x->>'i')::int AS i,
        CASE WHEN jsonb_typeof(x->'leases') = 'null' THEN NULL ELSE ARRAY(
          SELECT ROW((l->>'claim_id')::bigint, (l->>'user_id')::bigint,
            now() + make_interval(secs => (l->>'in')::float8))::lease
          FROM jsonb_array_elements(x->'leases') WITH ORDINALITY AS e (l, n)
          ORDER BY e.n
        ) END AS leases,
        (x->>'except')::bigint AS except_claim, (x->>'claim')::bigint AS claim_id,
        (x->>'annotated')::int AS annotated, (x->>'k')::int AS k
      FROM jsonb_array_elements($1::text::jsonb) x
    )
    SELECT c.i,
      live_leases(c.leases, c.except_claim)::text AS live,
      (SELECT coalesce(array_agg(l), '{}') FROM unnest(c.leases) l
        WHERE l.expires_at > now() AND l.claim_id IS DISTINCT FROM c.except_claim)::text
        AS live_ref,
      holds_live_lease(c.leases, c.claim_id) AS holds,
      EXISTS (SELECT FROM unnest(c.leases) l WHERE l.claim_id = c.claim_id
        AND l.expires_at > now()) AS holds_ref,
      lease_full_until(c.annotated, c.leases, c.k) AS full,
      CASE WHEN c.annotated < c.k AND c.annotated + cardinality(c.leases) >= c.k THEN (
        SELECT l.expires_at FROM unnest(c.leases) l ORDER BY l.expires_at
        OFFSET cardinality(c.leases) - (c.k - c.annotated) LIMIT 1
      ) END AS full_ref
    FROM c
    ORDER BY c.i`,
      [JSON.stringify(all)],
    );
    assert.equal(rows.length, all.length);
    let full = 0;
    for (const r of rows) {
      const c = JSON.stringify(all[r.i]);
      assert.equal(r.live, r.live_ref, `live_leases, case ${c}`);
      assert.equal(r.holds, r.holds_ref, `holds_live_lease, case ${c}`);
      assert.deepEqual(r.full, r.full_ref, `lease_full_until, case ${c}`);
      if (r.full) full++;
    }
    // The generator reaches every branch: some held, some not, and full_until both set and null.
    assert.ok(rows.some((r) => r.holds) && rows.some((r) => !r.holds));
    assert.ok(full > 20 && full < rows.length - 20, `${full} of ${rows.length} cases full`);
  },
);

/** The plan of `query`, as EXPLAIN (VERBOSE) prints it. */
async function plan(h: { db: Parameters<typeof rawMany>[0] }, query: string): Promise<string> {
  const rows = await rawMany<{ "QUERY PLAN": string }>(
    h.db,
    `EXPLAIN (VERBOSE, COSTS OFF) ${query}`,
  );
  return rows.map((r) => r["QUERY PLAN"]).join("\n");
}

// Inlined: the function's own scan appears in the caller's plan; a call would show as a Function
// Scan (LANGUAGE, volatility, STRICT and SECURITY DEFINER decide; see the migration).
withDb(
  "latest_predictions and may_see_dataset are inlined into the statements that read them",
  async (h) => {
    const predictions = await plan(
      h,
      `SELECT p.predictions FROM (VALUES (1::bigint)) v (id)
    LEFT JOIN LATERAL latest_predictions(v.id) p ON true`,
    );
    assert.doesNotMatch(predictions, /Function Scan/, predictions);
    assert.match(predictions, /annotations/, predictions);
    const rule = await plan(
      h,
      `SELECT d.id FROM datasets d
    WHERE EXISTS (SELECT FROM may_see_dataset(d.id, d.access, 1::bigint, 'annotator'))`,
    );
    assert.doesNotMatch(rule, /Function Scan/, rule);
    assert.match(rule, /dataset_members/, rule);
  },
);

// A SQL function whose body is one expression (no FROM) is inlined into its caller, unless it is
// declared IMMUTABLE over a STABLE body (or STABLE over a VOLATILE one), or STRICT over a body
// that is not: a call not inlined runs the SQL function executor for each row (webhook_image:
// 2.7 µs a call against 1.5 inlined, db/migrations/20261207160000_webhook_image_stable.sql).
withDb("every single-expression SQL function is inlined where it is called", async (h) => {
  const functions = await rawMany<{ name: string; types: string[] }>(
    h.db,
    `SELECT p.proname AS name,
      ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY
        AS a (t, n) ORDER BY n) AS types
    FROM pg_proc p
    JOIN pg_language l ON l.oid = p.prolang
    WHERE p.pronamespace = 'public'::regnamespace AND l.lanname = 'sql' AND NOT p.proretset
      AND p.prosrc !~* '\\mfrom\\M'
    ORDER BY p.proname`,
  );
  assert.ok(functions.some((f) => f.name === "webhook_image"), "the list holds the known ones");
  for (const f of functions) {
    // Arguments from a table's columns: constants would let the planner fold a call it did not
    // inline. A plain table, not a temporary one: the pool may run the next query elsewhere.
    const columns = f.types.map((t, i) => `a${i} ${t}`).join(", ");
    await rawMany(h.db, `CREATE TABLE inline_args (${columns})`);
    try {
      const shown = await plan(
        h,
        `SELECT ${f.name}(${f.types.map((_, i) => `a${i}`).join(", ")}) FROM inline_args`,
      );
      assert.doesNotMatch(shown, new RegExp(`\\b${f.name}\\(`), `${f.name} is called:\n${shown}`);
    } finally {
      await rawMany(h.db, `DROP TABLE inline_args`);
    }
  }
});
