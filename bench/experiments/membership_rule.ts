/**
 * `deno run -A bench/experiments/membership_rule.ts [--debian] [--rounds N]`
 *
 * What the dataset membership rule (may_see_dataset, db/migrations/*_dataset_membership.sql)
 * costs, on the embedded PostgreSQL 18 or, with --debian, Debian's PostgreSQL 15
 * (testkit/debian_postgres.ts), without HTTP:
 *
 * 1. One statement that reads a dataset row by id, as the claim statement's `dataset` step does,
 *    run 100,000 times in a PL/pgSQL loop (so no round trip is measured) without the rule and with
 *    each way of writing it: the shipped set-returning SQL function read in EXISTS (which
 *    PostgreSQL inlines; decision 0019); the same rule as a PL/pgSQL function (decision 0016's
 *    choice); the same body as a scalar LANGUAGE sql function (never inlined: it has a subquery);
 *    the expression written out in the statement. A member and a
 *    non-member of a `members` dataset. Rounds interleave; each figure is the best round's.
 * 2. Claim + submit cycles through the server's own statements on one connection, in an `open`
 *    dataset against a `members` one whose member the annotator is, in interleaved rounds: the
 *    median of the per-round ratios.
 */
import postgres from "postgres";
import type { Db } from "../../lib/db/query.ts";
import { migrate } from "../../lib/db/migrate.ts";
import { createHumanAnnotation } from "../../sql/annotations/queries.ts";
import { claimNextImage } from "../../sql/claims/queries.ts";
import { scratchDatabase } from "../lib/database.ts";
import { flag, has } from "../lib/args.ts";

const rounds = flag("--rounds", 6);
const debian = has("--debian");

const server = await scratchDatabase("membership", debian);
const sql = postgres(server.url, { max: 1, onnotice: () => {} });
try {
  await migrate(sql as unknown as Db, server.url);
  const [{ version }] = await sql<{ version: string }[]>`SELECT version()`;
  console.log(version.split(",")[0]);
  await sql`INSERT INTO users (name, role) SELECT 'u' || g, 'annotator' FROM generate_series(1, 100) g`;
  await sql`INSERT INTO datasets (name, labels, access)
    SELECT 'd' || g, '{car}', 'members' FROM generate_series(1, 10) g`;
  // Odd users are members of every dataset; even ones of none.
  await sql`INSERT INTO dataset_members (dataset_id, user_id)
    SELECT d.id, u.id FROM datasets d, users u WHERE u.id % 2 = 1`;
  await sql.unsafe(`
    CREATE FUNCTION pg_temp.sql_rule(dataset_id bigint, access text, caller_id bigint,
      caller_role text) RETURNS boolean LANGUAGE sql STABLE AS $$
      SELECT caller_role = 'admin' OR access = 'open' OR EXISTS (
        SELECT FROM dataset_members m WHERE m.dataset_id = sql_rule.dataset_id
          AND m.user_id = caller_id)
    $$;
    CREATE FUNCTION pg_temp.plpgsql_rule(dataset_id bigint, access text, caller_id bigint,
      caller_role text) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
    BEGIN
      RETURN caller_role = 'admin' OR access = 'open' OR EXISTS (
        SELECT FROM dataset_members m WHERE m.dataset_id = plpgsql_rule.dataset_id
          AND m.user_id = caller_id);
    END
    $$;`);
  await sql`VACUUM ANALYZE`;

  const variants: [string, string][] = [
    ["no rule", "u IS NOT NULL"],
    [
      "may_see_dataset (set-returning SQL in EXISTS)",
      "EXISTS (SELECT FROM may_see_dataset(d.id, d.access, u, 'annotator'))",
    ],
    ["the same rule, PL/pgSQL", "pg_temp.plpgsql_rule(d.id, d.access, u, 'annotator')"],
    ["the same body, LANGUAGE sql", "pg_temp.sql_rule(d.id, d.access, u, 'annotator')"],
    [
      "written out in the statement",
      "(d.access = 'open' OR EXISTS (SELECT FROM dataset_members m " +
      "WHERE m.dataset_id = d.id AND m.user_id = u))",
    ],
  ];
  const best: Record<string, number> = {};
  const n = 100_000;
  for (let r = 0; r < rounds; r++) {
    for (const [name, rule] of variants) {
      for (const [who, user] of [["member", 1], ["non-member", 2]] as const) {
        await sql.unsafe(`
          CREATE OR REPLACE FUNCTION pg_temp.loop(n int, u bigint) RETURNS void
          LANGUAGE plpgsql AS $$
          BEGIN
            FOR i IN 1..n LOOP
              PERFORM d.claim_ttl_seconds FROM datasets d WHERE d.id = 1 + i % 10 AND ${rule};
            END LOOP;
          END $$`);
        await sql.unsafe(`SELECT pg_temp.loop(1000, ${user})`);
        const t = performance.now();
        await sql.unsafe(`SELECT pg_temp.loop(${n}, ${user})`);
        const us = (performance.now() - t) * 1000 / n;
        const key = `${name}, ${who}`;
        best[key] = Math.min(best[key] ?? Infinity, us);
      }
    }
  }
  console.log(`\nµs per one-row statement (best of ${rounds} rounds of ${n.toLocaleString()}):`);
  for (const [key, us] of Object.entries(best)) console.log(`  ${key.padEnd(56)} ${us.toFixed(1)}`);

  // 2. The cycle, open against members.
  const [{ id: user }] = await sql<{ id: string }[]>`SELECT id::text FROM users WHERE id = 1`;
  const ds: Record<string, string> = {};
  for (const access of ["open", "members"]) {
    const [{ id }] = await sql<{ id: string }[]>`
      INSERT INTO datasets (name, labels, access) VALUES (${`cycle-${access}`}, '{car}', ${access})
      RETURNING id::text`;
    ds[access] = id;
    await sql`INSERT INTO images (dataset_id, uri, priority)
      SELECT ${id}::bigint, 's3://x/' || g, random() FROM generate_series(1, 60000) g`;
  }
  await sql`INSERT INTO dataset_members (dataset_id, user_id)
    SELECT ${ds.members}::bigint, id FROM users`;
  await sql`VACUUM ANALYZE`;
  const db = sql as unknown as Db;
  const cycle = async (datasetId: string) => {
    const c = await claimNextImage(db, {
      dataset_id: datasetId,
      user_id: user,
      caller_role: "annotator",
    });
    if (!c || c.state !== "new") throw new Error("no claim");
    const a = await createHumanAnnotation(db, {
      claim_id: c.claim.id,
      image_id: c.image.id,
      user_id: user,
      caller_role: "annotator",
      labels: ["car"],
      shapes: [],
    });
    if (!a) throw new Error("refused");
  };
  for (const k of ["open", "members"]) for (let j = 0; j < 300; j++) await cycle(ds[k]);
  const ms: Record<string, number[]> = { open: [], members: [] };
  const per = 400;
  for (let r = 0; r < 2 * rounds; r++) {
    for (const k of r % 2 ? ["members", "open"] : ["open", "members"]) {
      const t = performance.now();
      for (let j = 0; j < per; j++) await cycle(ds[k]);
      ms[k].push((performance.now() - t) / per);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const ratios = ms.open.map((o, j) => ms.members[j] / o);
  console.log(`\nclaim + submit, one connection, ${2 * rounds} rounds of ${per} cycles each:`);
  console.log(`  open     ms/cycle ${ms.open.map((x) => x.toFixed(2)).join(" ")}`);
  console.log(`  members  ms/cycle ${ms.members.map((x) => x.toFixed(2)).join(" ")}`);
  console.log(`  median ratio members / open: ${median(ratios).toFixed(3)}`);
} finally {
  await sql.end();
  await server.stop();
}
