/**
 * `deno run -A bench/experiments/explain_batch.ts [--images N] [--callers N]`
 *
 * The plan of sql/claims/claim_next_images.sql (the batched claim) at --images (default
 * 1,000,000) for --callers annotators (default 16), custom and generic (plan_cache_mode), each
 * in a rolled-back transaction.
 */
import postgres from "postgres";
import type { Db } from "../../lib/db/query.ts";
import { freePort, startEmbeddedPostgres } from "../../lib/runtime/embedded_pg.ts";
import { migrate } from "../../lib/db/migrate.ts";

const args = Deno.args;
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const images = flag("--images", 1_000_000);
const callers = flag("--callers", 16);
const here = (p: string) => new URL(p, import.meta.url);
const claimText = await Deno.readTextFile(here("../../sql/claims/claim_next_images.sql"));

const pg = await startEmbeddedPostgres({
  dir: `.data/bench-explain-batch-${Deno.pid}`,
  port: freePort(),
  database: "explain",
  persistent: false,
});
const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
try {
  await migrate(sql as unknown as Db, pg.url);
  const [{ id: datasetId }] = await sql`
    INSERT INTO datasets (name, labels) VALUES ('explain', '{car}') RETURNING id::text`;
  const users = (await sql`
    INSERT INTO users (name, role)
    SELECT 'annotator-' || g, 'annotator' FROM generate_series(1, ${callers}) g
    RETURNING id::text`).map((r) => r.id as string);
  const seed = await Deno.readTextFile(here("../sql/seed_images.sql"));
  await sql.unsafe(seed.replace("%TABLE%", "images"), [datasetId, "s", 1, images]);
  await sql`VACUUM (ANALYZE)`;
  for (const mode of ["force_custom_plan", "force_generic_plan"]) {
    await sql.begin(async (tx) => {
      await tx.unsafe(`SET LOCAL plan_cache_mode = ${mode}`);
      await tx.unsafe(`PREPARE batch_${mode}(bigint, bigint[]) AS ${claimText}`);
      const plan = await tx.unsafe(
        `EXPLAIN (ANALYZE, BUFFERS) EXECUTE batch_${mode}(${datasetId}, '{${users.join(",")}}')`,
      );
      console.log(`--- ${mode}\n` + plan.map((r) => r["QUERY PLAN"]).join("\n"));
      throw new Error("rollback");
    }).catch((e) => {
      if (e.message !== "rollback") throw e;
    });
  }
} finally {
  await sql.end();
  await pg.stop();
}
