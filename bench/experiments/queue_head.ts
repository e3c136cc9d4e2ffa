/**
 * `deno run -A bench/experiments/queue_head.ts [--images N] [--steps N,N,...] [--setup
 *   embedded|tuned]`: what a claim pays for the images completed since the images table's last
 * vacuum.
 *
 * A completed image's entry stays in images_claim_queue_idx (its row's `done` changed, so the
 * old version's entry is dead, not gone) until a vacuum removes it; claims walk the index from
 * its head, where the completed images are (taken highest priority first), so every claim steps
 * over them. Seeds one dataset, runs the bench's HTTP annotators (32, lean client) up to each
 * step's count of completed images, and after each step prints the batched claim's plan figures
 * for 16 annotators (EXPLAIN (ANALYZE, BUFFERS), inside a rolled-back transaction, the second
 * of two runs): the queue index scan's buffers and time, and the statement's; then the same
 * after `VACUUM images`. Autovacuum is left as PostgreSQL has it; the script says when it
 * vacuumed images meanwhile.
 */
import postgres from "postgres";
import { migrate } from "../../lib/db/migrate.ts";
import type { Db } from "../../lib/db/query.ts";
import { compile } from "../../lib/db/statement.ts";
import { adminToken, createAnnotators } from "../../testkit/api.ts";
import { startLoadServer } from "../../testkit/process.ts";
import { flag, option } from "../lib/args.ts";
import { openBenchDatabase, type Setup } from "../lib/database.ts";
import { budget, runWorkers, split } from "../lib/workers.ts";
import { seedImages } from "../sections/setup.ts";
import type { CycleJob, CycleResult } from "../workers/http_cycle.ts";

const images = flag("--images", 1_000_000);
const steps = (option("--steps") ?? "0,10000,30000,60000,100000").split(",").map(Number);
const setup = (option("--setup") ?? "tuned") as Setup;

class RolledBack extends Error {}

const bench = await openBenchDatabase(setup, undefined);
const sql = postgres(bench.url, { max: 2, onnotice: () => {} });
await migrate(sql as unknown as Db, bench.url);
const server = await startLoadServer({ databaseUrl: bench.url });
try {
  const admin = await adminToken(server.url);
  const [{ id: datasetId }] = await sql<{ id: string }[]>`
    INSERT INTO datasets (name, labels, access) VALUES ('queue-head', '{car,person}', 'open')
    RETURNING id::text`;
  await seedImages(sql, "images", datasetId, images);
  const tokens = await createAnnotators(server.url, admin, 32, "queue-head");
  // 16 users that never claim, for the plan.
  await createAnnotators(server.url, admin, 16, "queue-head-explain");
  const explainUsers = (await sql<{ id: string }[]>`
    SELECT id::text FROM users WHERE name LIKE 'queue-head-explain-%' ORDER BY id`)
    .map((r) => r.id);
  await sql`VACUUM (ANALYZE) images`;
  const { text, params } = compile(
    await Deno.readTextFile(new URL("../../sql/claims/claim_next_images.sql", import.meta.url)),
  );
  const values: Record<string, string | null> = {
    dataset_id: datasetId,
    user_ids: `{${explainUsers.join(",")}}`,
    user_roles: `{${explainUsers.map(() => "annotator").join(",")}}`,
    after_claim_ids: null,
  };
  const plan = async () => {
    let lines: string[] = [];
    for (let i = 0; i < 2; i++) {
      await sql.begin(async (tx) => {
        const rows = await tx.unsafe(
          `EXPLAIN (ANALYZE, BUFFERS) ${text}`,
          params.map((name) => values[name]),
        );
        lines = rows.map((r) => r["QUERY PLAN"] as string);
        throw new RolledBack();
      }).catch((e) => {
        if (!(e instanceof RolledBack)) throw e;
      });
    }
    const at = lines.findIndex((l) => l.includes("Index Scan using images_claim_queue_idx"));
    const scan = lines[at].match(/actual time=[\d.]+\.\.([\d.]+)/)?.[1];
    const buffers = lines.slice(at, at + 6).find((l) => l.includes("Buffers:"))?.trim();
    const total = lines.find((l) => l.startsWith("Execution Time"));
    return `queue index scan ${scan} ms, ${buffers}; ${total}`;
  };
  const autovacuums = async () =>
    (await sql<{ n: string }[]>`
      SELECT autovacuum_count::text AS n FROM pg_stat_user_tables WHERE relname = 'images'`)[0].n;
  let done = 0;
  for (const step of steps) {
    if (step > done) {
      const shared = budget(step - done);
      const t = performance.now();
      await runWorkers<CycleJob, CycleResult>(
        new URL("../workers/http_cycle.ts", import.meta.url),
        split(tokens, 2).map((group) => ({
          base: server.url,
          datasetId,
          tokens: group,
          budget: shared,
        })),
      );
      const rate = (step - done) / ((performance.now() - t) / 1000);
      console.log(`ran ${step - done} cycles, ${rate.toFixed(0)} cycles/s`);
      done = step;
    }
    console.log(
      `${done} completed (autovacuums of images so far: ${await autovacuums()}): ${await plan()}`,
    );
  }
  await sql`VACUUM images`;
  console.log(`after VACUUM images: ${await plan()}`);
} finally {
  await server.stop();
  await sql.end({ timeout: 5 });
  await bench.stop();
}
