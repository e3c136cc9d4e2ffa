/**
 * `deno run -A bench/experiments/sql_cycle.ts [--images N] [--cycles N] [--window N]
 *   [--setup FILE]...`: the database's share of one annotator cycle, measured without HTTP and
 * without concurrency, so schema and SQL changes can be compared on a busy machine.
 *
 * One connection runs the server's own statements (claimNextImage, then createHumanAnnotation,
 * through sql/claims and sql/annotations) in a loop; a second runs bench/naive_cycle.sql's three
 * statements on its own table. Each connection's backend CPU time is read from /proc, so the
 * figures are CPU milliseconds per cycle spent in PostgreSQL, reported per window of cycles (the
 * claim's cost grows as done images pile up at the head of the queue index until a vacuum).
 * `--setup FILE` changes the schema first (bench/experiments/*.sql), as `deno task bench
 * --db-setup` does.
 */
import postgres from "postgres";
import type { Db } from "../../lib/db/query.ts";
import { freePort, startEmbeddedPostgres } from "../../lib/runtime/embedded_pg.ts";
import { migrate } from "../../lib/db/migrate.ts";
import { createHumanAnnotation } from "../../sql/annotations/queries.ts";
import { claimNextImage } from "../../sql/claims/queries.ts";
import { parseScript } from "../workers/naive_driver.ts";
import { round } from "../lib/stats.ts";

const args = Deno.args;
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const setups = args.flatMap((a, i) => a === "--setup" ? [args[i + 1]] : []);
const images = flag("--images", 100_000);
const cycles = flag("--cycles", 6_000);
const window = flag("--window", 2_000);

function backendCpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

const seed = Deno.readTextFileSync(new URL("../sql/seed_images.sql", import.meta.url));
const pg = await startEmbeddedPostgres({
  dir: `.data/bench-sql-cycle-${Deno.pid}`,
  port: freePort(),
  database: "cycle",
  persistent: false,
  settings: args.includes("--pg-stats")
    ? { shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track": "all" }
    : {},
});
const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
const ours = postgres(pg.url, { max: 1, onnotice: () => {} });
const naive = postgres(pg.url, { max: 1, onnotice: () => {} });
try {
  await migrate(admin as unknown as Db, pg.url);
  for (const file of setups) await admin.unsafe(await Deno.readTextFile(file));
  await admin.unsafe(
    await Deno.readTextFile(new URL("../sql/naive_schema.sql", import.meta.url)),
  );
  const [{ id: datasetId }] = await admin`
    INSERT INTO datasets (name, labels) VALUES ('cycle', '{car}') RETURNING id::text`;
  const [{ id: userId }] = await admin`
    INSERT INTO users (name, role) VALUES ('annotator', 'annotator') RETURNING id::text`;
  for (const table of ["images", "naive_images"]) {
    const ds = table === "images" ? datasetId : "1";
    await admin.unsafe(seed.replace("%TABLE%", table), [ds, "s", 1, images]);
  }
  await admin`VACUUM (ANALYZE)`;
  const pgStats = args.includes("--pg-stats");
  if (pgStats) await admin`CREATE EXTENSION pg_stat_statements`;
  await admin`CHECKPOINT`;

  const [{ pid: oursPid }] = await ours`SELECT pg_backend_pid() AS pid`;
  const [{ pid: naivePid }] = await naive`SELECT pg_backend_pid() AS pid`;
  const commands = parseScript(
    await Deno.readTextFile(new URL("../naive_cycle.sql", import.meta.url)),
  );
  const shapes = [{ type: "bbox" as const, label: "car", x: 10, y: 20, width: 100, height: 50 }];

  const oursCycle = async () => {
    const claimed = await claimNextImage(ours as unknown as Db, {
      dataset_id: datasetId,
      user_id: userId,
    });
    if (!claimed || claimed.state !== "new") throw new Error("no new claim");
    const made = await createHumanAnnotation(ours as unknown as Db, {
      claim_id: claimed.claim.id,
      image_id: claimed.image.id,
      user_id: userId,
      labels: ["car"],
      shapes,
    });
    if (!made) throw new Error("submit refused");
  };
  const vars: Record<string, string> = { client_id: "0", dataset_id: "1" };
  const naiveCycle = async () => {
    for (const c of commands) {
      const rows = await naive.unsafe(c.text, c.params.map((p) => vars[p]), { prepare: true });
      if (c.gset) vars.image_id = String(rows[0].image_id);
    }
  };

  // Warm-up, then statistics that know claims and annotations are not empty (what autovacuum
  // does within a minute on a live system): plans cached while those tables were empty scan
  // them sequentially, and that cost grows with every cycle (bench/README.md).
  for (let i = 0; i < 500; i++) {
    await oursCycle();
    await naiveCycle();
  }
  if (!args.includes("--no-analyze")) await admin`ANALYZE`;

  console.log(
    `${images} images; CPU ms per cycle in the PostgreSQL backend, and wall ms per cycle` +
      (setups.length ? `; setup: ${setups.join(", ")}` : ""),
  );
  console.log("cycles        ours cpu  ours wall   naive cpu  naive wall");
  for (let done = 0; done < cycles; done += window) {
    if (pgStats) await admin`SELECT pg_stat_statements_reset()`;
    const row: number[] = [];
    // Alternate, so load from elsewhere on the machine hits both alike.
    for (const [cycle, pid] of [[oursCycle, oursPid], [naiveCycle, naivePid]] as const) {
      const cpu0 = backendCpuMs(pid);
      const t0 = performance.now();
      for (let i = 0; i < window; i++) await cycle();
      row.push((backendCpuMs(pid) - cpu0) / window, (performance.now() - t0) / window);
    }
    console.log(
      `${String(done + window).padStart(6)}  ` +
        row.map((x) => String(round(x, 3)).padStart(10)).join("  "),
    );
    if (pgStats) {
      const stats = await admin`
        SELECT calls, round(mean_exec_time::numeric, 3) AS ms,
          round(shared_blks_hit::numeric / calls, 1) AS blks,
          left(regexp_replace(query, '\\s+', ' ', 'g'), 70) AS query
        FROM pg_stat_statements WHERE calls >= ${window} ORDER BY total_exec_time DESC LIMIT 6`;
      for (const r of stats) {
        console.log(`        ${r.calls} x ${r.ms} ms, ${r.blks} blks: ${r.query}`);
      }
    }
  }
  await new Promise((r) => setTimeout(r, 700)); // statistics reach pg_stat after ~0.5 s
  for (
    const r of await admin`
    SELECT relname, n_tup_upd::integer AS updates, n_tup_hot_upd::integer AS hot
    FROM pg_stat_user_tables WHERE relname IN ('images', 'naive_images', 'claims')
    ORDER BY relname`
  ) {
    console.log(`${r.relname}: ${r.updates} updates, ${r.hot} HOT`);
  }
  if (args.includes("--explain")) {
    // The plans for the annotator who has done all those cycles, as the server runs them: a
    // named prepared statement, whose generic plan PostgreSQL may settle on (rolled back).
    const claimText = await Deno.readTextFile(
      new URL("../../sql/claims/claim_next_image.sql", import.meta.url),
    );
    const submitText = await Deno.readTextFile(
      new URL("../../sql/annotations/create_human_annotation.sql", import.meta.url),
    );
    for (const mode of ["force_custom_plan", "force_generic_plan"]) {
      await admin.begin(async (tx) => {
        await tx.unsafe(`SET LOCAL plan_cache_mode = ${mode}`);
        await tx.unsafe(`PREPARE bench_claim AS ${claimText}`);
        await tx.unsafe(`PREPARE bench_submit AS ${submitText}`);
        const claim = await tx.unsafe(
          `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE bench_claim(${datasetId}, ${userId})`,
        );
        const [row] = await tx.unsafe(`
          SELECT id, image_id FROM claims WHERE user_id = ${userId} AND active`);
        const submit = await tx.unsafe(
          `EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_submit(${row.id}, ${row.image_id}, ${userId}, ` +
            `'{car}', '[]', '{car}', 110, 70)`,
        );
        const c = claim[0]["QUERY PLAN"][0];
        console.log(
          `${mode}: claim ${c["Execution Time"]} ms, ${c.Plan["Shared Hit Blocks"]} blks ` +
            `(planning ${c["Planning Time"]} ms)`,
        );
        if (args.includes("--plans")) {
          const text = await tx.unsafe(
            `EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim(${datasetId}, ${userId})`,
          );
          console.log(text.map((r) => r["QUERY PLAN"]).join("\n"));
        }
        console.log(submit.map((r) => r["QUERY PLAN"]).join("\n"));
        throw new Error("rollback");
      }).catch((e) => {
        if (e.message !== "rollback") throw e;
      });
      await admin.unsafe("DEALLOCATE ALL");
    }
  }
} finally {
  await Promise.all([ours.end(), naive.end(), admin.end()]);
  await pg.stop();
}
