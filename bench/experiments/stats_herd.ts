/**
 * `deno run -A bench/experiments/stats_herd.ts [--images N] [--callers N] [--rounds N]
 *   [--root DIR] [--setup embedded|tuned]`: what a herd of getDatasetStats calls costs: `--callers`
 * requests for one dataset's stats at once (a team opening the annotator page together, which
 * asks for the progress line) while one annotator claims and submits in a loop. The dataset has
 * `--images` images, half of them annotated. Per round: the herd's wall time and slowest answer,
 * the annotator's claim + submit latency while the herd ran (p50, max), and the aggregations
 * PostgreSQL ran (pg_stat_statements). `--root DIR`: the server as another checkout has it (a
 * worktree after `deno install`), for the figures before a change.
 */
import postgres from "postgres";
import type { Db } from "../../lib/db/query.ts";
import { migrate } from "../../lib/db/migrate.ts";
import { flag, option } from "../lib/args.ts";
import { openBenchDatabase } from "../lib/database.ts";
import { seedImages } from "../sections/setup.ts";
import { adminToken, call, createAnnotators, expectStatus } from "../../testkit/api.ts";
import { startLoadServer } from "../../testkit/process.ts";

const images = flag("--images", 1_000_000);
const callers = flag("--callers", 50);
const rounds = flag("--rounds", 3);
const root = option("--root");
const setup = option("--setup") === "tuned" ? "tuned" : "embedded";

const db = await openBenchDatabase(setup, undefined, true);
const sql = postgres(db.url, { max: 2, onnotice: () => {} });
try {
  await migrate(sql as unknown as Db, db.url);
  await sql`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`;
  const server = await startLoadServer({ databaseUrl: db.url, root });
  try {
    const base = server.url;
    const admin = await adminToken(server);
    const [annotator] = await createAnnotators(base, admin, 1, "stats-herd");
    const [{ id: datasetId }] = await sql<{ id: string }[]>`
      INSERT INTO datasets (name, labels, access) VALUES ('stats-herd', '{car}', 'open')
      RETURNING id::text`;
    await seedImages(sql, "images", datasetId, images);
    // Half the images done, each with one human annotation, as a dataset halfway through.
    const [{ id: author }] = await sql<{ id: string }[]>`
      INSERT INTO users (name, role) VALUES ('stats-herd-author', 'annotator') RETURNING id::text`;
    await sql`
      UPDATE images SET done = true, annotators = ARRAY[${author}::bigint]
      WHERE dataset_id = ${datasetId} AND id % 2 = 0`;
    await sql`
      INSERT INTO annotations (image_id, dataset_id, source, author_id, labels, shapes)
      SELECT id, dataset_id, 'human', ${author}::bigint, '{car}', '[]'::jsonb
      FROM images WHERE dataset_id = ${datasetId} AND done`;
    await sql`VACUUM (ANALYZE)`;
    const path = `/api/v1/datasets/${datasetId}/stats`;
    expectStatus(await call(base, admin, "GET", path), 200);

    for (let r = 1; r <= rounds; r++) {
      await sql`SELECT pg_stat_statements_reset()`;
      let herdRunning = true;
      const cycleMs: number[] = [];
      const annotate = (async () => {
        while (herdRunning) {
          const t0 = performance.now();
          const claimed = await call(
            base,
            annotator,
            "POST",
            `/api/v1/datasets/${datasetId}/claims`,
          );
          if (claimed.status !== 201 && claimed.status !== 200) {
            throw new Error(`claim ${claimed.status}`);
          }
          const { claim, image } = claimed.body;
          const submitted = await call(
            base,
            annotator,
            "POST",
            `/api/v1/images/${image.id}/annotations`,
            {
              claim_id: claim.id,
              labels: ["car"],
              shapes: [{ type: "bbox", label: "car", x: 1, y: 1, width: 2, height: 2 }],
            },
          );
          if (submitted.status !== 201) throw new Error(`submit ${submitted.status}`);
          cycleMs.push(performance.now() - t0);
        }
      })();
      const t0 = performance.now();
      const answers = await Promise.all(
        Array.from(
          { length: callers },
          () => call(base, admin, "GET", path, undefined, { timeoutMs: 120_000 }),
        ),
      );
      const wallMs = performance.now() - t0;
      herdRunning = false;
      await annotate;
      const failed = answers.filter((a) => a.status !== 200);
      if (failed.length) {
        throw new Error(`${failed.length} stats calls failed: ${failed[0].status}`);
      }
      // get_dataset_stats.sql, by a name in its body: PostgreSQL 18 keeps no leading comment.
      const [{ calls, mean_ms }] = await sql<{ calls: number; mean_ms: number }[]>`
        SELECT coalesce(sum(calls), 0)::integer AS calls,
          coalesce(sum(total_exec_time) / nullif(sum(calls), 0), 0)::float8 AS mean_ms
        FROM pg_stat_statements WHERE query LIKE '%per_reviewer%'`;
      const sorted = [...cycleMs].sort((a, b) => a - b);
      console.log(
        `round ${r}: ${callers} stats calls in ${wallMs.toFixed(0)} ms (slowest ` +
          `${Math.max(...answers.map((a) => a.ms)).toFixed(0)} ms); ${calls} aggregations of ` +
          `${mean_ms.toFixed(0)} ms; the annotator meanwhile: ${cycleMs.length} cycles, p50 ` +
          `${(sorted[Math.floor(sorted.length / 2)] ?? 0).toFixed(1)} ms, max ` +
          `${(sorted.at(-1) ?? 0).toFixed(0)} ms`,
      );
    }
  } finally {
    await server.stop();
  }
} finally {
  await sql.end();
  await db.stop();
}
