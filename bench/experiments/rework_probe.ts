/**
 * `deno run -A bench/experiments/rework_probe.ts [--debian] [--rounds N]`
 *
 * What the rework rule costs a claim (sql/claims/claim_next_image.sql's `rework_image`: one probe
 * of images_rework_idx before the queue scan), on the embedded PostgreSQL 18 or, with --debian,
 * Debian's PostgreSQL 15 (testkit/debian_postgres.ts), without HTTP:
 *
 * 1. The probe as shipped (GIN on rework_for, `rework_for @> ARRAY[caller]`), the probe on a btree
 *    (dataset_id, priority DESC, id) it replaced (`caller = ANY (rework_for)`), and the queue
 *    scan, as the claim statement writes them with their row locks, each run 100,000 times in a
 *    PL/pgSQL loop (no round trip measured), on a dataset of 60,000 images with no image awaiting
 *    rework, then on one with 1,000 awaiting another annotator's rework (the caller in none).
 *    Rounds interleave; each figure is the best round's.
 * 2. Claim + submit cycles through the server's statements (the shipped index only) on one
 *    connection, in a dataset with no rework pending against one with 1,000 images reserved for
 *    another annotator, in interleaved rounds: the median of the per-round ratios.
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

const server = await scratchDatabase("rework", debian);
const sql = postgres(server.url, { max: 1, onnotice: () => {} });
try {
  await migrate(sql as unknown as Db, server.url);
  const [{ version }] = await sql<{ version: string }[]>`SELECT version()`;
  console.log(version.split(",")[0]);
  await sql`INSERT INTO users (name, role) SELECT 'u' || g, 'annotator' FROM generate_series(1, 10) g`;
  const ds: Record<string, string> = {};
  for (const name of ["none", "reserved"]) {
    const [{ id }] = await sql<{ id: string }[]>`
      INSERT INTO datasets (name, labels, access) VALUES (${name}, '{car}', 'open')
      RETURNING id::text`;
    ds[name] = id;
    await sql`INSERT INTO images (dataset_id, uri, priority)
      SELECT ${id}::bigint, 's3://x/' || g, random() FROM generate_series(1, 60000) g`;
  }
  // 1,000 images awaiting user 2's rework for the next hour; the caller is user 1.
  await sql`UPDATE images SET rework_for = '{2}', rework_until = now() + interval '1 hour'
    WHERE id IN (SELECT id FROM images WHERE dataset_id = ${ds.reserved}::bigint
      ORDER BY random() LIMIT 1000)`;
  // The index the shipped one replaced, for the comparison.
  await sql`CREATE INDEX rework_btree ON images (dataset_id, priority DESC, id)
    WHERE rework_until IS NOT NULL`;
  await sql`VACUUM ANALYZE`;

  const filters = `i.dataset_id = ds AND NOT i.done
    AND (i.full_until IS NULL OR i.full_until <= now())
    AND NOT (1::bigint = ANY (i.annotators)) AND (1::bigint = ANY (i.skipped_by)) IS NOT TRUE`;
  const queries: [string, string][] = [
    [
      "rework probe, GIN (shipped)",
      `PERFORM * FROM (SELECT i.id FROM images i WHERE ${filters} AND i.rework_until > now()
        AND i.rework_for @> ARRAY[1::bigint] ORDER BY i.priority DESC, i.id LIMIT 1
        FOR NO KEY UPDATE SKIP LOCKED) x`,
    ],
    [
      "rework probe, btree (replaced)",
      `PERFORM * FROM (SELECT i.id FROM images i WHERE ${filters} AND i.rework_until > now()
        AND 1::bigint = ANY (i.rework_for) ORDER BY i.priority DESC, i.id LIMIT 1
        FOR NO KEY UPDATE SKIP LOCKED) x`,
    ],
    [
      "queue scan",
      `PERFORM * FROM (SELECT i.id FROM images i WHERE ${filters}
        AND (i.rework_until IS NULL OR i.rework_until <= now())
        ORDER BY i.priority DESC, i.id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED) x`,
    ],
  ];
  const best: Record<string, number> = {};
  const n = 100_000;
  for (let r = 0; r < rounds; r++) {
    for (const [name, query] of queries) {
      for (const state of ["none", "reserved"]) {
        await sql.unsafe(`
          CREATE OR REPLACE FUNCTION pg_temp.loop(n int, ds bigint) RETURNS void
          LANGUAGE plpgsql AS $$
          BEGIN
            FOR i IN 1..n LOOP
              ${query};
            END LOOP;
          END $$`);
        await sql.unsafe(`SELECT pg_temp.loop(1000, ${ds[state]})`);
        const t = performance.now();
        await sql.unsafe(`SELECT pg_temp.loop(${n}, ${ds[state]})`);
        const us = (performance.now() - t) * 1000 / n;
        const key = `${name}, ${state === "none" ? "no rework pending" : "1,000 for others"}`;
        best[key] = Math.min(best[key] ?? Infinity, us);
      }
    }
  }
  console.log(`\nµs per query (best of ${rounds} rounds of ${n.toLocaleString()}):`);
  for (const [key, us] of Object.entries(best)) console.log(`  ${key.padEnd(50)} ${us.toFixed(1)}`);
  await sql`DROP INDEX rework_btree`;

  // 2. The cycle, without rework pending against 1,000 images reserved for someone else.
  const db = sql as unknown as Db;
  const cycle = async (datasetId: string) => {
    const c = await claimNextImage(db, {
      dataset_id: datasetId,
      user_id: "1",
      caller_role: "annotator",
    });
    if (!c || c.state !== "new") throw new Error("no claim");
    const a = await createHumanAnnotation(db, {
      claim_id: c.claim.id,
      image_id: c.image.id,
      user_id: "1",
      caller_role: "annotator",
      labels: ["car"],
      shapes: [],
    });
    if (!a) throw new Error("refused");
  };
  for (const k of ["none", "reserved"]) for (let j = 0; j < 300; j++) await cycle(ds[k]);
  const ms: Record<string, number[]> = { none: [], reserved: [] };
  const per = 400;
  for (let r = 0; r < 2 * rounds; r++) {
    for (const k of r % 2 ? ["reserved", "none"] : ["none", "reserved"]) {
      const t = performance.now();
      for (let j = 0; j < per; j++) await cycle(ds[k]);
      ms[k].push((performance.now() - t) / per);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const ratios = ms.none.map((o, j) => ms.reserved[j] / o);
  console.log(`\nclaim + submit, one connection, ${2 * rounds} rounds of ${per} cycles each:`);
  console.log(`  no rework pending   ms/cycle ${ms.none.map((x) => x.toFixed(2)).join(" ")}`);
  console.log(`  1,000 for others    ms/cycle ${ms.reserved.map((x) => x.toFixed(2)).join(" ")}`);
  console.log(`  median ratio reserved / none: ${median(ratios).toFixed(3)}`);
} finally {
  await sql.end();
  await server.stop();
}
