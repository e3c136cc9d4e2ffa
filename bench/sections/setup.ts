/**
 * Before anything is measured: the database migrated (and changed by --db-setup), the run's
 * settings printed; then the annotators, the datasets seeded (ours, the naive table, pg-boss's
 * queue), VACUUM (ANALYZE), and a warm-up of all three followed by ANALYZE. None of it is timed
 * into a figure.
 */
import type postgres from "postgres";
import { migrate } from "../../lib/db/migrate.ts";
import type { Db } from "../../lib/db/query.ts";
import {
  addMembers,
  adminToken as adminTokenOf,
  createAnnotators,
  createDataset,
} from "../../testkit/api.ts";
import { postmasterOf } from "../../testkit/proc.ts";
import { type Ctx, fmt, log, sqlFile } from "../lib/context.ts";
import { type BenchDatabase, serverSettings } from "../lib/database.ts";
import { fusedCycleSupport } from "../lib/spec.ts";
import { bossFor } from "../lib/pgboss.ts";
import type { Options } from "../options.ts";
import { type Client, httpCycle, type HttpRun, naiveCycle, peerCycle } from "./cycle.ts";

const DESCRIBED = [
  "shared_buffers",
  "effective_cache_size",
  "wal_compression",
  "maintenance_work_mem",
  "max_wal_size",
  "random_page_cost",
  "fsync",
  "synchronous_commit",
];

/** One line naming a PostgreSQL setup and the settings that tell it apart, for the report. */
export function describeSetup(
  kind: BenchDatabase["kind"],
  version: string,
  settings: Record<string, string>,
): string {
  const what = kind === "embedded"
    ? "embedded, its defaults"
    : kind === "tuned"
    ? "Debian, production-like settings"
    : "DATABASE_URL, its own settings";
  const shown = DESCRIBED.filter((k) => k in settings).map((k) => `${k}=${settings[k]}`);
  return `PostgreSQL ${version} (${what}): ${shown.join(", ")}`;
}

/** Migrates, applies --db-setup, prints the run's settings; its version and settings. */
export async function prepareDatabase(
  opts: Options,
  sql: postgres.Sql,
  database: BenchDatabase,
  pgbench: Ctx["pgbench"],
) {
  await migrate(sql as unknown as Db, database.url);
  for (const file of opts.dbSetup) {
    await sql.unsafe(await Deno.readTextFile(file));
    log(`database changed by ${file} (an experiment: not the shipped schema)`);
  }
  const [{ server_version }] = await sql<{ server_version: string }[]>`SHOW server_version`;
  const version = server_version.split(" ")[0];
  const settings = await serverSettings(sql);
  const title = describeSetup(database.kind, version, settings);
  log(`\n${title}`);
  if (Object.keys(database.given).length) {
    log(
      `  started with ${Object.entries(database.given).map(([k, v]) => `${k}=${v}`).join(", ")}`,
    );
  }
  log(`  ceiling: ${pgbench && !opts.driver ? pgbench.version : "the driver (no pgbench)"}`);
  return { version, settings, title };
}

export async function seedImages(sql: postgres.Sql, table: string, datasetId: string, n: number) {
  const text = sqlFile("seed_images").replace("%TABLE%", table);
  // In slices, so one statement's WAL and memory stay modest.
  for (let at = 0; at < n; at += 250_000) {
    await sql.unsafe(text, [datasetId, `seed${datasetId}`, at + 1, Math.min(n, at + 250_000)]);
  }
}

async function seedPgBoss(url: string, queue: string, n: number): Promise<void> {
  const boss = bossFor(url, 4, true);
  boss.on("error", (e) => console.error(`pg-boss: ${e.message}`));
  await boss.start();
  try {
    await boss.createQueue(queue);
    const batch = 10_000;
    for (let at = 0; at < n; at += batch) {
      const jobs = Array.from({ length: Math.min(batch, n - at) }, (_, i) => ({
        data: { image: at + i + 1 },
        // pg-boss priorities are integers.
        priority: Math.floor(Math.random() * 1_000_000),
      }));
      await boss.insert(queue, jobs);
    }
  } finally {
    await boss.stop({ graceful: false, close: true });
  }
}

/** The datasets of the HTTP runs. */
export interface Datasets {
  big: string;
  /**
   * The big dataset of each client's cycle: the lean one's is `big`; fetch and fused get one of
   * their own when they run, so that each system of the cycle rounds claims from a queue only its
   * own runs used, as the ceiling and the peer do (a completed image's entry stays at the head of
   * the queue index until a vacuum, and every later claim steps over it:
   * bench/experiments/queue_head.ts).
   */
  cycle: Record<Client, string | undefined>;
  /**
   * The scale section's datasets, undefined when it is skipped: a small one for each round (each
   * round's small run starts on an untouched queue) and a big one; `naive`, the same in
   * naive_images for the naive cycle's own scale runs (undefined when the ceiling is skipped).
   */
  scale?: { small: string[]; big: string; naive?: { small: string[]; big: string } };
}

/**
 * Everything the sections need, seeded and warmed up. `explainUserId`: an annotator that never
 * claims, for the claim's plan.
 */
export async function setUp(
  opts: Options,
  run: Pick<Ctx, "sql" | "url" | "server" | "serverEnv" | "pgbench" | "noteRss">,
): Promise<
  { ctx: Ctx; datasets: Datasets; explainUserId: string; warmups: Record<Client, HttpRun[]> }
> {
  const { sql, url, server } = run;
  const base = server.url;
  const adminToken = await adminTokenOf(base);
  const spec = await fetch(`${base}/api/openapi.json`).then((r) => r.json());
  const fused = fusedCycleSupport(spec);
  const tokens = await createAnnotators(base, adminToken, opts.concurrency + 1, "bench-annotator");
  const [{ id: explainUserId }] = await sql<{ id: string }[]>`
    SELECT id::text FROM users WHERE name = ${`bench-annotator-${opts.concurrency + 1}`}`;
  tokens.pop();
  const annotatorIds = (await sql<{ id: string }[]>`
    SELECT id::text FROM users WHERE name LIKE 'bench-annotator-%'`).map((r) => r.id);
  // A `members` dataset has every annotator as a member: each claim and submit checks it.
  const dataset = async (name: string) => {
    const id = await createDataset(base, adminToken, name, undefined, opts.access);
    if (opts.access === "members") await addMembers(base, adminToken, id, annotatorIds);
    return id;
  };

  let t = performance.now();
  const smallIds = [];
  if (!opts.skip.has("scale")) {
    for (let r = 1; r <= opts.scaleRounds; r++) {
      smallIds.push(await dataset(`bench-scale-small-${r}`));
    }
  }
  const bigId = await dataset("bench-big");
  const fetchBigId = opts.skip.has("fetch") ? undefined : await dataset("bench-big-fetch");
  const fusedBigId = opts.skip.has("fused") || !fused.supported
    ? undefined
    : await dataset("bench-big-fused");
  // The scale runs get a big dataset of their own, untouched before them.
  const scaleBigId = opts.skip.has("scale") ? undefined : await dataset("bench-scale-big");
  for (const id of smallIds) await seedImages(sql, "images", id, opts.smallImages);
  for (const id of [bigId, fetchBigId, fusedBigId]) {
    if (id) await seedImages(sql, "images", id, opts.images);
  }
  if (scaleBigId) await seedImages(sql, "images", scaleBigId, opts.images);
  log(
    `\nsetup: ${[bigId, fetchBigId, fusedBigId, scaleBigId].filter(Boolean).length} x ` +
      `${fmt(opts.images)} ` +
      (smallIds.length ? `+ ${smallIds.length} x ${fmt(opts.smallImages)} ` : "") +
      `images seeded in ${fmt((performance.now() - t) / 1000, 1)} s`,
  );
  const queue = "bench-annotate";
  // naive_images: dataset 1 for the cycle rounds; with the scale section, 2 (big) and one small
  // dataset per round after it, untouched before the scale runs, as ours are.
  const naiveScale = !opts.skip.has("ceiling") && scaleBigId
    ? {
      big: "2",
      small: Array.from({ length: opts.scaleRounds }, (_, r) => String(3 + r)),
    }
    : undefined;
  if (!opts.skip.has("ceiling")) {
    t = performance.now();
    await sql.unsafe(sqlFile("naive_schema"));
    await seedImages(sql, "naive_images", "1", opts.images);
    if (naiveScale) {
      await seedImages(sql, "naive_images", naiveScale.big, opts.images);
      for (const id of naiveScale.small) {
        await seedImages(sql, "naive_images", id, opts.smallImages);
      }
    }
    log(
      `setup: ${naiveScale ? 2 : 1} x ${fmt(opts.images)} ` +
        (naiveScale ? `+ ${naiveScale.small.length} x ${fmt(opts.smallImages)} ` : "") +
        `naive_images in ${fmt((performance.now() - t) / 1000, 1)} s`,
    );
  }
  if (!opts.skip.has("peer")) {
    t = performance.now();
    await seedPgBoss(url, queue, opts.images);
    log(`setup: ${fmt(opts.images)} pg-boss jobs in ${fmt((performance.now() - t) / 1000, 1)} s`);
  }
  t = performance.now();
  await sql`VACUUM (ANALYZE)`;
  log(`setup: VACUUM (ANALYZE) in ${fmt((performance.now() - t) / 1000, 1)} s`);

  const [{ pid }] = await sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
  const ctx: Ctx = {
    ...run,
    opts,
    postmaster: postmasterOf(pid),
    adminToken,
    tokens,
    queue,
    fused,
  };
  const C = opts.concurrency;

  // Warm-up, not measured: JIT, prepared statements, connections, caches, for all of them, each
  // on the queue its measured runs use, as the ceiling's and the peer's are. Ours' first round
  // ran 17 % below its next four after 1,000 cycles on a dataset of its own, and level with them
  // after 4,000 on its own queue (decision 0011).
  const warmups: Record<Client, HttpRun[]> = { lean: [], fetch: [], fused: [] };
  const warmUp = async (client: Client, id: string | undefined, cycles: number) => {
    if (id) warmups[client].push(await httpCycle(ctx, id, C, cycles, client));
  };
  await warmUp("lean", bigId, opts.warmupCycles);
  await warmUp("fetch", fetchBigId, 500);
  await warmUp("fused", fusedBigId, 500);
  if (!opts.skip.has("ceiling")) await naiveCycle(ctx, C, C * 20);
  if (!opts.skip.has("peer")) await peerCycle(ctx, C, 1_000);
  // Statistics that know claims and annotations are no longer empty, as autovacuum's first
  // ANALYZE leaves them within a minute on a live system. Without it, the plans the server's
  // connections cached while those tables were empty scan them sequentially, and the cycle's
  // cost grows with every row (docs/decisions/0011-bench-method.md).
  if (!opts.staleStats) await sql`ANALYZE`;
  return {
    ctx,
    datasets: {
      big: bigId,
      cycle: { lean: bigId, fetch: fetchBigId, fused: fusedBigId },
      scale: scaleBigId ? { small: smallIds, big: scaleBigId, naive: naiveScale } : undefined,
    },
    explainUserId,
    warmups,
  };
}
