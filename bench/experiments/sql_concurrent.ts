/**
 * `deno run -A bench/experiments/sql_concurrent.ts [--images N] [--cycles N] [--rounds N]
 *   [--concurrency N] [--pool N] [--setup FILE]... [--claim FILE] [--submit FILE] [--pg-stats]
 *   [--batch N [--batch-submits N] [--batch-size N]]`
 *
 * PostgreSQL's share of the annotator cycle under concurrency, without HTTP: `--concurrency`
 * annotators (default 32) share a pool of `--pool` connections (default 10, the server's
 * DB_POOL_MAX) and loop claim -> submit through the server's statements (or the variants given
 * with --claim / --submit, which take the same parameters and return `state`, `claim_id` and
 * `id`); the naive cycle (bench/naive_cycle.sql) runs at the same concurrency, one connection per
 * client as pgbench does. With --batch, claims and submits go through lib/db/batcher.ts as the
 * server sends them (N batches of each in flight). Rounds alternate; each prints cycles/s and the cluster's CPU
 * milliseconds per cycle (all backends and auxiliary processes, from /proc), the figure that
 * decides throughput on a machine whose cores are all busy.
 */
import postgres from "postgres";
import { Batcher } from "../../lib/db/batcher.ts";
import type { Db } from "../../lib/db/query.ts";
import { freePort, startEmbeddedPostgres } from "../../lib/runtime/embedded_pg.ts";
import { migrate } from "../../lib/db/migrate.ts";
import { parseScript } from "../workers/naive_driver.ts";
import { clusterCpuSeconds } from "../../testkit/proc.ts";
import { round } from "../lib/stats.ts";
import {
  type ClaimedHumanAnnotation,
  createHumanAnnotation,
  createHumanAnnotations,
} from "../../sql/annotations/queries.ts";
import { claimNextImage, claimNextImages } from "../../sql/claims/queries.ts";
import { all, flag, has, option } from "../lib/args.ts";
import { annotatedDataset } from "../lib/database.ts";
import { seedImages } from "../sections/setup.ts";

const setups = all("--setup");
const images = flag("--images", 100_000);
const cycles = flag("--cycles", 3_000);
const rounds = flag("--rounds", 3);
const concurrency = flag("--concurrency", 32);
const poolMax = flag("--pool", 10);
const pgStats = has("--pg-stats");
// --batch N: claims and submits go through lib/db/batcher.ts (N batches of each in flight), as the
// server sends them; --batch-submits N sets the submits' apart; --batch-size caps a batch.
const batchInFlight = flag("--batch", 0);
const submitsInFlight = flag("--batch-submits", batchInFlight);
const batchSize = flag("--batch-size", 64);
const here = (p: string) => new URL(p, import.meta.url);
const claimText = await Deno.readTextFile(
  option("--claim") ?? here("../../sql/claims/claim_next_image.sql"),
);
const submitText = await Deno.readTextFile(
  option("--submit") ?? here("../../sql/annotations/create_human_annotation.sql"),
);

const pg = await startEmbeddedPostgres({
  dir: `.data/bench-sql-concurrent-${Deno.pid}`,
  port: freePort(),
  database: "cycle",
  persistent: false,
  settings: pgStats
    ? {
      shared_preload_libraries: "pg_stat_statements",
      "pg_stat_statements.track": "all",
      // plans = calls means the statement is planned at every call (a custom plan each time).
      "pg_stat_statements.track_planning": "on",
    }
    : {},
});
const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
const ours = postgres(pg.url, { max: poolMax, onnotice: () => {} });
const naive = postgres(pg.url, { max: concurrency, onnotice: () => {} });
try {
  await migrate(admin as unknown as Db, pg.url);
  for (const file of setups) await admin.unsafe(await Deno.readTextFile(file));
  await admin.unsafe(await Deno.readTextFile(here("../sql/naive_schema.sql")));
  const { datasetId, users } = await annotatedDataset(admin, {
    access: "open",
    annotators: concurrency,
  });
  await seedImages(admin, "images", datasetId, images);
  await seedImages(admin, "naive_images", "1", images);
  await admin`VACUUM (ANALYZE)`;
  if (pgStats) await admin`CREATE EXTENSION pg_stat_statements`;
  const [{ pid }] = await admin`SELECT pg_backend_pid() AS pid`;
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const postmaster = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);

  const shapes = [{ type: "bbox", label: "car", x: 10, y: 20, width: 100, height: 50 }];
  let budget = 0;
  let empty = 0;
  const db = ours as unknown as Db;
  const claims = new Batcher({
    key: () => datasetId,
    exclusive: (u: string) => [u],
    run: (_key, users: string[]) =>
      claimNextImages(db, {
        dataset_id: datasetId,
        user_ids: users,
        user_roles: users.map(() => "annotator"),
        after_claim_ids: null,
      }),
    maxSize: batchSize,
    maxInFlight: batchInFlight,
  });
  const submits = new Batcher({
    key: () => "",
    exclusive: (a: ClaimedHumanAnnotation) => [`u${a.user_id}`, `i${a.image_id}`],
    run: (_key, items: ClaimedHumanAnnotation[]) => createHumanAnnotations(db, items),
    maxSize: batchSize,
    maxInFlight: submitsInFlight,
  });
  const batchedLoop = async (user: string) => {
    while (budget-- > 0) {
      let outcome = await claims.submit(user);
      for (let attempt = 0; !outcome && attempt < 3; attempt++) {
        const single = await claimNextImage(db, {
          dataset_id: datasetId,
          user_id: user,
          caller_role: "annotator",
        });
        if (single?.state !== "conflict") outcome = single ?? undefined;
      }
      if (!outcome || outcome.state === "conflict") {
        empty++;
        continue;
      }
      const a = {
        claim_id: outcome.claim.id,
        image_id: outcome.image.id,
        user_id: user,
        caller_role: "annotator" as const,
        labels: ["car"],
        shapes: shapes as ClaimedHumanAnnotation["shapes"],
      };
      const made = await submits.submit(a) ?? await createHumanAnnotation(db, a);
      if (!made) throw new Error(`submit refused: ${JSON.stringify(outcome)}`);
    }
  };
  const oursLoop = batchInFlight ? batchedLoop : async (user: string) => {
    while (budget-- > 0) {
      let row;
      for (let attempt = 0; attempt < 3; attempt++) {
        [row] = await ours.unsafe(claimText, [datasetId, user], { prepare: true });
        if (!row || row.state !== "conflict") break;
      }
      if (!row) {
        empty++;
        continue;
      }
      const [made] = await ours.unsafe(submitText, [
        row.claim_id,
        row.id,
        user,
        ["car"],
        shapes,
        ["car"],
        110,
        70,
      ], { prepare: true });
      if (!made) throw new Error(`submit refused: ${JSON.stringify(row)}`);
    }
  };
  const commands = parseScript(await Deno.readTextFile(here("../naive_cycle.sql")));
  const naiveLoop = async (client: number) => {
    const vars: Record<string, string> = { client_id: String(client), dataset_id: "1" };
    const conn = await naive.reserve();
    try {
      while (budget-- > 0) {
        for (const c of commands) {
          const rows = await conn.unsafe(c.text, c.params.map((p) => vars[p]), { prepare: true });
          if (c.gset) vars.image_id = String(rows[0].image_id);
        }
      }
    } finally {
      conn.release();
    }
  };
  const run = async (which: "ours" | "naive", n: number) => {
    budget = n;
    empty = 0;
    const cpu0 = clusterCpuSeconds(postmaster);
    const t0 = performance.now();
    await Promise.all(
      which === "ours" ? users.map(oursLoop) : users.map((_, i) => naiveLoop(i + 1)),
    );
    const s = (performance.now() - t0) / 1000;
    const cpu = clusterCpuSeconds(postmaster) - cpu0;
    if (which === "ours" && batchInFlight) {
      console.log(
        `    claims: ${claims.stats.items} in ${claims.stats.batches} batches; submits: ` +
          `${submits.stats.items} in ${submits.stats.batches}`,
      );
      claims.stats.batches =
        claims.stats.items =
        submits.stats.batches =
        submits.stats.items =
          0;
    }
    return { rate: n / s, cpuMs: (1000 * cpu) / n };
  };
  await run("ours", 1_000);
  await run("naive", 1_000);
  await admin`ANALYZE`;
  console.log(
    `${images} images, ${concurrency} annotators (pool ${poolMax}), ${cycles} cycles a round` +
      (setups.length ? `; setup: ${setups.join(", ")}` : "") +
      (option("--claim") ? `; claim: ${option("--claim")}` : "") +
      (option("--submit") ? `; submit: ${option("--submit")}` : ""),
  );
  const total = { ours: { n: 0, s: 0, cpu: 0 }, naive: { n: 0, s: 0, cpu: 0 } };
  for (let r = 1; r <= rounds; r++) {
    const order: ("ours" | "naive")[] = r % 2 ? ["ours", "naive"] : ["naive", "ours"];
    for (const which of order) {
      await admin`CHECKPOINT`;
      if (pgStats) await admin`SELECT pg_stat_statements_reset()`;
      const res = await run(which, cycles);
      total[which].n += cycles;
      total[which].s += cycles / res.rate;
      total[which].cpu += res.cpuMs * cycles;
      console.log(
        `round ${r} ${which.padEnd(5)} ${String(Math.round(res.rate)).padStart(6)} cycles/s  ` +
          `PostgreSQL CPU ${round(res.cpuMs, 3)} ms/cycle` +
          (which === "ours" && empty ? `  (${empty} empty claims)` : ""),
      );
      if (pgStats && which === "ours") {
        const stats = await admin`
          SELECT calls, plans, round(mean_exec_time::numeric, 3) AS ms,
            round(shared_blks_hit::numeric / calls, 1) AS blks,
            left(regexp_replace(query, '\\s+', ' ', 'g'), 70) AS query
          FROM pg_stat_statements WHERE calls >= ${cycles / 2}
          ORDER BY total_exec_time DESC LIMIT 8`;
        for (const s of stats) {
          console.log(
            `    ${s.calls} x ${s.ms} ms (${s.plans} planned), ${s.blks} blks: ${s.query}`,
          );
        }
      }
    }
  }
  if (has("--explain")) {
    // The claim's plan while the other annotators keep cycling: what one claim reads when the
    // head of the queue is busy (in a transaction rolled back, so nothing changes).
    budget = 1_000_000;
    const load = Promise.all(users.slice(1).map(oursLoop));
    await new Promise((r) => setTimeout(r, 2_000));
    for (let i = 0; i < 2; i++) {
      await ours.begin(async (tx) => {
        await tx.unsafe(`PREPARE explain_claim AS ${claimText}`);
        const plan = await tx.unsafe(
          `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE explain_claim(${datasetId}, ${users[0]})`,
        );
        console.log(plan.map((r) => r["QUERY PLAN"]).join("\n"));
        throw new Error("rollback");
      }).catch((e) => {
        if (e.message !== "rollback") throw e;
      });
    }
    budget = 0;
    await load;
  }
  const o = total.ours, n = total.naive;
  console.log(
    `total: ours ${Math.round(o.n / o.s)} cycles/s, ${round(o.cpu / o.n, 3)} ms/cycle; ` +
      `naive ${Math.round(n.n / n.s)} cycles/s, ${round(n.cpu / n.n, 3)} ms/cycle; ` +
      `ratio ${round((o.n / o.s) / (n.n / n.s), 2)}`,
  );
} finally {
  await Promise.all([ours.end(), naive.end(), admin.end()]);
  await pg.stop();
}
