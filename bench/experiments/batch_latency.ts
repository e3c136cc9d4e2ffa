/**
 * `deno run -A bench/experiments/batch_latency.ts [--images N] [--batch N] [--batches N]
 *   [--setup FILE]... [--claim-b FILE] [--submit-b FILE] [--b-set NAME=VALUE]... [--explain]
 *   [--pg embedded|tuned] [--pg-stats]`
 *
 * The serial cost of one claim batch and one submit batch: with one batch of each in flight
 * (lib/db/batcher.ts), a batch's time from send to answer bounds the cycle's throughput (items
 * per batch / batch time) while the machine still has idle CPU, so a microsecond per item in these
 * statements is throughput. Claims `--batch` users' images in one claim_next_images.sql and
 * submits them in one create_human_annotations.sql, `--batches` times on one connection, and
 * prints each statement's median and mean milliseconds. With `--claim-b` / `--submit-b` (variants
 * taking the same parameters; `--setup FILE` creates what they need after the migrations) the
 * batches alternate between the server's statement (A) and the variant (B), so the machine's
 * other load hits both alike. `--b-set NAME=VALUE`: side B runs on a connection of its own with
 * that setting (e.g. plan_cache_mode=force_generic_plan). `--explain`: one batch's plans (auto_explain, ANALYZE, nested).
 * `--pg tuned`: on Debian's PostgreSQL 15 with production-like settings (bench/lib/database.ts)
 * instead of the embedded PostgreSQL 18. `--pg-stats`: each statement's mean planning and execution
 * time on the server (pg_stat_statements), beside the time the client waited.
 */
import postgres from "postgres";
import type { Db } from "../../lib/db/query.ts";
import { many } from "../../lib/db/query.ts";
import { inlineStatement } from "../../lib/db/statement.ts";
import { annotatedDataset, openBenchDatabase } from "../lib/database.ts";
import { seedImages } from "../sections/setup.ts";
import { migrate } from "../../lib/db/migrate.ts";
import { all, flag, has, option } from "../lib/args.ts";

const setups = all("--setup");
const images = flag("--images", 1_000_000);
const size = flag("--batch", 14);
const batches = flag("--batches", 300);
const explain = has("--explain");
const here = (p: string) => new URL(p, import.meta.url);
const load = async (file: string) =>
  inlineStatement<Record<string, unknown>, Row>(
    await Deno.readTextFile(file),
  );
type Row = Record<string, unknown>;
const sides = {
  A: {
    claim: await load(here("../../sql/claims/claim_next_images.sql").pathname),
    submit: await load(here("../../sql/annotations/create_human_annotations.sql").pathname),
  },
  B: {
    claim: await load(
      option("--claim-b") ?? here("../../sql/claims/claim_next_images.sql").pathname,
    ),
    submit: await load(
      option("--submit-b") ?? here("../../sql/annotations/create_human_annotations.sql").pathname,
    ),
  },
};
const bSettings = Object.fromEntries(
  all("--b-set").map((kv) => kv.split(/=(.*)/s).slice(0, 2)),
);
const paired = option("--claim-b") !== undefined || option("--submit-b") !== undefined ||
  Object.keys(bSettings).length > 0;

const pgStats = has("--pg-stats");
const pg = await openBenchDatabase(
  option("--pg") === "tuned" ? "tuned" : "embedded",
  undefined,
  pgStats,
);
const notices: string[] = [];
const sql = postgres(pg.url, { max: 1, onnotice: (n) => notices.push(n.message) });
try {
  await migrate(sql as unknown as Db, pg.url);
  for (const file of setups) await sql.unsafe(await Deno.readTextFile(file));
  const { datasetId, users } = await annotatedDataset(sql, {
    access: "members",
    annotators: size,
  });
  await seedImages(sql, "images", datasetId, images);
  await sql`VACUUM (ANALYZE)`;
  const sqlB = postgres(pg.url, { max: 1, onnotice: () => {}, connection: bSettings });
  if (pgStats) {
    for (const c of [sql, sqlB]) await c`SET pg_stat_statements.track_planning = on`;
  }
  const dbs = { A: sql as unknown as Db, B: sqlB as unknown as Db };
  const shapes = [{ type: "bbox", label: "car", x: 10, y: 20, width: 100, height: 50 }];
  const times = () => ({ claim: [] as number[], submit: [] as number[] });
  const ms = { A: times(), B: times() };
  const once = async (side: "A" | "B") => {
    let t = performance.now();
    const claimed = await many(dbs[side], sides[side].claim, {
      dataset_id: datasetId,
      user_ids: users,
      user_roles: users.map(() => "annotator"),
      after_claim_ids: null,
    });
    ms[side].claim.push(performance.now() - t);
    const submits = claimed.map((c) => {
      if (c.state !== "new") throw new Error(`claim not new: ${JSON.stringify(c)}`);
      return {
        claim_id: c.claim_id,
        image_id: c.id,
        user_id: c.user_id,
        role: "annotator",
        labels: ["car"],
        shapes,
        used: ["car"],
        max_x: 110,
        max_y: 70,
      };
    });
    t = performance.now();
    const made = await many(dbs[side], sides[side].submit, { submits });
    ms[side].submit.push(performance.now() - t);
    if (made.length !== size) throw new Error(`${size - made.length} submits refused`);
  };
  const order = (i: number) => (paired ? (["A", "B", "B", "A"] as const)[i % 4] : "A");
  for (let i = 0; i < 40; i++) await once(order(i));
  await sql`ANALYZE`;
  if (pgStats) {
    await sql`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`;
    await sql`SELECT pg_stat_statements_reset()`;
  }
  for (const s of [ms.A, ms.B]) s.claim.length = s.submit.length = 0;
  for (let i = 0; i < batches; i++) await once(order(i));
  const stats = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return {
      median: sorted[sorted.length >> 1],
      mean: xs.reduce((a, b) => a + b, 0) / xs.length,
    };
  };
  for (const side of paired ? ["A", "B"] as const : ["A"] as const) {
    for (const kind of ["claim", "submit"] as const) {
      const { median, mean } = stats(ms[side][kind]);
      console.log(
        `${side} ${kind.padEnd(6)} batch: median ${median.toFixed(3)} ms, mean ${
          mean.toFixed(3)
        } ms (${(1000 * median / size).toFixed(0)} µs an item at the median), ${size} items`,
      );
    }
  }
  if (paired) {
    for (const kind of ["claim", "submit"] as const) {
      console.log(
        `B/A ${kind}: median ${(stats(ms.B[kind]).median / stats(ms.A[kind]).median).toFixed(3)}`,
      );
    }
  }
  // The round trip without a statement's work: what the client waits for besides PostgreSQL.
  const trips: number[] = [];
  for (let i = 0; i < batches; i++) {
    const t = performance.now();
    await sql.unsafe("SELECT 1", [], { prepare: true });
    trips.push(performance.now() - t);
  }
  console.log(`round trip (SELECT 1): median ${stats(trips).median.toFixed(3)} ms`);
  if (pgStats) {
    const rows = await sql<
      { query: string; calls: string; plans: string; plan: number; exec: number }[]
    >`
      SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 40) AS query, calls::text, plans::text,
        mean_plan_time AS plan, mean_exec_time AS exec
      FROM pg_stat_statements WHERE calls >= ${batches / 2} ORDER BY total_exec_time DESC`;
    for (const r of rows) {
      console.log(
        `pg_stat_statements: ${r.calls} calls, ${r.plans} plans of ${r.plan.toFixed(3)} ms, exec ${
          r.exec.toFixed(3)
        } ms: ${r.query}`,
      );
    }
  }
  if (explain) {
    await sql`LOAD 'auto_explain'`;
    await sql.unsafe(`SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;
      SET auto_explain.log_buffers = on; SET auto_explain.log_nested_statements = on;
      SET auto_explain.log_level = notice`);
    notices.length = 0;
    await once(paired ? "B" : "A");
    console.log(notices.join("\n\n"));
  }
  await sqlB.end();
} finally {
  await sql.end();
  await pg.stop();
}
