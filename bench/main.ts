/**
 * `deno task bench [--quick] [--json FILE]`: the annotator loop measured against the raw-SQL
 * ceiling and a peer, on one PostgreSQL, in one run. See bench/README.md for what each part
 * measures, how, and what was tried.
 *
 *  1. cycle   N annotators (32) over HTTP, each looping claim -> submit one bbox with its own JWT,
 *             against the server as its own process, on a dataset of 1,000,000 images (100,000
 *             with --quick) with random priorities.
 *  2. ceiling bench/naive_cycle.sql (three autocommitted statements) by pgbench, or the driver.
 *  3. peer    pg-boss fetch + complete, same concurrency, same number of jobs, random priorities.
 *             1-3 run in interleaved rounds, so load from elsewhere on the machine hits all three.
 *  4. low     claim latency at 8 annotators.
 *  5. scale   claims/s on a 10,000-image dataset vs the big one (interleaved, same cycle count).
 *  6. ingest  registerImages (10,000 per request) vs COPY; setPriorities vs UPDATE ... unnest.
 *  7. memory  the server's peak RSS (VmHWM).
 * Then it checks the claims table (no image handed out twice), prints one table of ratios and
 * writes it all as JSON with --json.
 */
import postgres from "postgres";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Db } from "../lib/db/query.ts";
import { migrate } from "../lib/db/migrate.ts";
import {
  type BenchDatabase,
  durabilitySettings,
  openBenchDatabase,
  topStatements,
} from "./lib/database.ts";
import { findPgbench, type NaiveRun, runNaiveDriver, runPgbench } from "./lib/pgbench.ts";
import { adminToken as adminTokenOf, createAnnotators, createDataset } from "../testkit/api.ts";
import { copyText } from "./lib/rows.ts";
import {
  childrenCpuSeconds,
  clusterCpuSeconds,
  cpuSeconds,
  loadAverage,
  postmasterOf,
} from "../testkit/proc.ts";
import { type ServerProcess, startLoadServer } from "../testkit/process.ts";
import { sleep } from "../testkit/time.ts";
import { latency, round } from "./lib/stats.ts";
import { budget, runWorkers, split } from "./lib/workers.ts";
import type { CycleJob, CycleResult } from "./workers/http_cycle.ts";
import type { IngestJob, IngestResult } from "./workers/http_ingest.ts";
import { bossFor } from "./lib/pgboss.ts";
import type { PgBossJob, PgBossResult } from "./workers/pgboss.ts";

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  quick: boolean;
  json?: string;
  /** Images in the big dataset (and rows / jobs for the ceiling and the peer). */
  images: number;
  /** Concurrent annotators for the headline comparison. */
  concurrency: number;
  lowConcurrency: number;
  /** Cycles each system runs at `concurrency`, over all rounds. */
  cycles: number;
  rounds: number;
  lowCycles: number;
  /** Cycles per scale run (each dataset runs twice, interleaved). */
  scaleCycles: number;
  smallImages: number;
  /** Images registered (and priorities set) in the ingest section. */
  ingestImages: number;
  /** Workers the HTTP annotators are spread over. */
  loadWorkers: number;
  /** The annotators' HTTP client. */
  client: "http1" | "fetch";
  skip: Set<string>;
  serverEnv: Record<string, string>;
  driver: boolean;
  /** Load pg_stat_statements and report the heaviest statements of the headline rounds. */
  pgStats: boolean;
  /** Skip the ANALYZE after the warm-up (to measure plans cached on empty tables). */
  staleStats: boolean;
  /** SQL files run after the migrations (experiments: bench/experiments/). */
  dbSetup: string[];
}

const SECTIONS = ["ceiling", "peer", "low", "scale", "ingest"];

const USAGE = `usage: deno task bench [--quick] [--json FILE] [options]
  --quick               100,000 images and fewer cycles (CI size)
  --json FILE           write every figure as JSON
  --images N            images in the big dataset (default 1,000,000; quick 100,000)
  --concurrency N       annotators for the headline runs (default 32)
  --cycles N            cycles per system at that concurrency, over all rounds
  --rounds N            interleaved rounds of ours / ceiling / peer (default 3)
  --skip LIST           comma-separated: ${SECTIONS.join(", ")}
  --driver              run the naive cycle through the driver even when pgbench exists
  --stale-stats         no ANALYZE after the warm-up (plans cached on empty tables)
  --db-setup FILE       run this SQL after the migrations (repeatable; bench/experiments/)
  --pg-stats            load pg_stat_statements; print the heaviest statements of the rounds
  --fetch               annotators use fetch instead of the lean HTTP/1.1 client
  --load-workers N      workers the annotators are spread over (default 2)
  --server-env K=V      extra environment for the server (repeatable), e.g. DB_POOL_MAX=4
PostgreSQL: embedded (default durability) unless DATABASE_URL is set, in which case a scratch
database is created on that server (CREATEDB needed) and dropped at the end.`;

function parseArgs(args: string[]): Options {
  const quick = args.includes("--quick");
  const o: Options = {
    quick,
    images: quick ? 100_000 : 1_000_000,
    concurrency: 32,
    lowConcurrency: 8,
    cycles: quick ? 9_000 : 30_000,
    rounds: 3,
    lowCycles: quick ? 3_000 : 8_000,
    scaleCycles: quick ? 1_500 : 2_500,
    smallImages: 10_000,
    ingestImages: quick ? 100_000 : 1_000_000,
    loadWorkers: 2,
    client: "http1",
    skip: new Set(),
    serverEnv: {},
    driver: false,
    pgStats: false,
    dbSetup: [],
    staleStats: false,
  };
  const count = (flag: string, v: string, min = 1) => {
    const n = Number(v.replaceAll("_", "").replaceAll(",", ""));
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag}: an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    let arg = args[i];
    let inline: string | undefined;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) [arg, inline] = [arg.slice(0, eq), arg.slice(eq + 1)];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    switch (arg) {
      case "--quick":
        break;
      case "--json":
        o.json = value();
        break;
      case "--images":
        o.images = count(arg, value(), 1_000);
        break;
      case "--concurrency":
        o.concurrency = count(arg, value());
        break;
      case "--cycles":
        o.cycles = count(arg, value());
        break;
      case "--rounds":
        o.rounds = count(arg, value());
        break;
      case "--skip":
        for (const s of value().split(",")) {
          if (!SECTIONS.includes(s)) throw new Error(`--skip: unknown section ${s}\n${USAGE}`);
          o.skip.add(s);
        }
        break;
      case "--driver":
        o.driver = true;
        break;
      case "--stale-stats":
        o.staleStats = true;
        break;
      case "--db-setup":
        o.dbSetup.push(value());
        break;
      case "--pg-stats":
        o.pgStats = true;
        break;
      case "--fetch":
        o.client = "fetch";
        break;
      case "--load-workers":
        o.loadWorkers = count(arg, value());
        break;
      case "--server-env": {
        const [k, ...v] = value().split("=");
        if (!k || !v.length) throw new Error(`--server-env: KEY=VALUE\n${USAGE}`);
        o.serverEnv[k] = v.join("=");
        break;
      }
      case "--help":
      case "-h":
        console.log(USAGE);
        Deno.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${args[i]}\n${USAGE}`);
    }
  }
  const used = o.cycles + o.lowCycles + 2 * o.scaleCycles + 1_000;
  if (used > o.images) throw new Error(`--images ${o.images}: the runs would use ${used} images`);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const log = (line: string) => console.log(line);
const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "-";

const sqlFile = (name: string) =>
  Deno.readTextFileSync(new URL(`./sql/${name}.sql`, import.meta.url));

/** Flushes dirty pages before a measured run, so no run pays for an earlier one's checkpoint. */
async function checkpoint(sql: postgres.Sql): Promise<void> {
  try {
    await sql`CHECKPOINT`;
  } catch {
    // Not a superuser (DATABASE_URL): runs then share checkpoints as they fall.
  }
}

// ---------------------------------------------------------------------------------------------
// The three cycles

/** CPU seconds: the server process, this process and its finished children, the cluster. */
interface Cpu {
  server: number;
  client: number;
  pg: number;
}

interface Run {
  cycles: number;
  wallS: number;
  /** CPU used during the run (pgbench counts as client: a finished child of this process). */
  cpu: Cpu;
}

interface HttpRun extends Run {
  claimMs: number[];
  submitMs: number[];
  imageIds: string[];
}

interface Ctx {
  opts: Options;
  sql: postgres.Sql;
  url: string;
  server: ServerProcess;
  /** The cluster's postmaster, when it runs on this machine (for its CPU time). */
  postmaster?: number;
  adminToken: string;
  /** Annotator tokens, one per concurrent annotator. */
  tokens: string[];
  pgbench?: { path: string; version: string };
  queue: string;
}

function cpuNow(ctx: Ctx): Cpu {
  return {
    server: ctx.server.cpuSeconds(),
    client: cpuSeconds("self") + childrenCpuSeconds("self"),
    pg: ctx.postmaster ? clusterCpuSeconds(ctx.postmaster) : NaN,
  };
}

/** Runs `fn`, adding the CPU each party used meanwhile to its answer. */
async function metered<R>(ctx: Ctx, fn: () => Promise<R>): Promise<R & { cpu: Cpu }> {
  const before = cpuNow(ctx);
  const r = await fn();
  // Connections that just closed: let their backends exit and be reaped (their CPU then moves
  // to the postmaster's account) rather than vanish between the two reads.
  await sleep(300);
  const after = cpuNow(ctx);
  return {
    ...r,
    cpu: {
      server: after.server - before.server,
      client: after.client - before.client,
      pg: after.pg - before.pg,
    },
  };
}

async function httpCycle(
  ctx: Ctx,
  datasetId: string,
  annotators: number,
  cycles: number,
): Promise<HttpRun> {
  const shared = budget(cycles);
  const workers = Math.min(ctx.opts.loadWorkers, annotators);
  const { wallS, results, cpu } = await metered(ctx, () =>
    runWorkers<CycleJob, CycleResult>(
      new URL("./workers/http_cycle.ts", import.meta.url),
      split(ctx.tokens.slice(0, annotators), workers).map((tokens) => ({
        base: ctx.server.url,
        datasetId,
        tokens,
        budget: shared,
        client: ctx.opts.client,
      })),
    ));
  const run: HttpRun = {
    cycles: results.reduce((a, r) => a + r.cycles, 0),
    wallS,
    cpu,
    claimMs: results.flatMap((r) => r.claimMs),
    submitMs: results.flatMap((r) => r.submitMs),
    imageIds: results.flatMap((r) => r.imageIds),
  };
  if (run.cycles !== cycles) {
    throw new Error(`the HTTP cycle ran ${run.cycles} of ${cycles} cycles (dataset drained?)`);
  }
  return run;
}

async function naiveCycle(ctx: Ctx, clients: number, cycles: number) {
  const perClient = Math.ceil(cycles / clients);
  const vars = { dataset_id: "1" };
  return await metered(
    ctx,
    () =>
      ctx.pgbench && !ctx.opts.driver
        ? runPgbench(ctx.pgbench.path, ctx.url, clients, perClient, vars)
        : runNaiveDriver(ctx.url, clients, perClient, vars),
  );
}

async function peerCycle(ctx: Ctx, concurrency: number, cycles: number) {
  const { wallS, results: [r], cpu } = await metered(
    ctx,
    () =>
      runWorkers<PgBossJob, PgBossResult>(new URL("./workers/pgboss.ts", import.meta.url), [{
        url: ctx.url,
        queue: ctx.queue,
        concurrency,
        poolMax: 10,
        budget: budget(cycles),
      }]),
  );
  if (r.cycles !== cycles) throw new Error(`pg-boss ran ${r.cycles} of ${cycles} cycles`);
  return { ...r, wallS, cpu };
}

/** Rate and CPU per cycle of a set of runs of one system. */
function summary(runs: Run[]) {
  const cycles = runs.reduce((a, r) => a + r.cycles, 0);
  const wallS = runs.reduce((a, r) => a + r.wallS, 0);
  const perCycle = (k: keyof Cpu) =>
    round((1000 * runs.reduce((a, r) => a + r.cpu[k], 0)) / cycles, 3);
  return {
    ...rate(cycles, wallS),
    cpu_ms_per_cycle: {
      server: perCycle("server"),
      client: perCycle("client"),
      pg: perCycle("pg"),
    },
    rounds: runs.map((r) => round(r.cycles / r.wallS, 1)),
  };
}

// ---------------------------------------------------------------------------------------------
// Setup

async function seedImages(sql: postgres.Sql, table: string, datasetId: string, n: number) {
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

/** The cluster's postmaster, if it is a process on this machine: the parent of a backend. */
async function postmasterPid(sql: postgres.Sql): Promise<number | undefined> {
  const [{ pid }] = await sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
  return postmasterOf(pid);
}

// ---------------------------------------------------------------------------------------------
// Results

interface RateFigures {
  cycles: number;
  wall_s: number;
  cycles_per_s: number;
}

const rate = (cycles: number, wallS: number): RateFigures => ({
  cycles,
  wall_s: round(wallS, 2),
  cycles_per_s: round(cycles / wallS, 1),
});

interface Ratio {
  measure: string;
  ours: string;
  reference: string;
  ratio: number | null;
  /** The issue's targets. */
  must: string;
  aim: string;
  pass: boolean | null;
}

function printTable(rows: Ratio[]): void {
  const header = ["measure", "ours", "reference", "ratio", "must", "aim", ""];
  const cells = rows.map((r) => [
    r.measure,
    r.ours,
    r.reference,
    r.ratio === null ? "" : r.ratio.toFixed(2),
    r.must,
    r.aim,
    r.pass === null ? "skipped" : r.pass ? "ok" : "MISSED",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c.map((x, i) => i === 0 || i === 2 ? x.padEnd(widths[i]) : x.padStart(widths[i])).join("  ")
      .trimEnd();
  log(line(header));
  log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const c of cells) log(line(c));
}

// ---------------------------------------------------------------------------------------------
// The run

async function main(opts: Options): Promise<number> {
  const started = performance.now();
  const loadBefore = loadAverage();
  const pgbench = await findPgbench();
  let database: BenchDatabase | undefined;
  let sql: postgres.Sql | undefined;
  let server: ServerProcess | undefined;
  try {
    database = await openBenchDatabase(Deno.env.get("DATABASE_URL") || undefined, opts.pgStats);
    const url = database.url;
    sql = postgres(url, { max: 4, onnotice: () => {} });
    await migrate(sql as unknown as Db, url);
    for (const file of opts.dbSetup) {
      await sql.unsafe(await Deno.readTextFile(file));
      log(`database changed by ${file} (an experiment: not the shipped schema)`);
    }
    const [{ version }] = await sql<{ version: string }[]>`SELECT version()`;
    const settings = await durabilitySettings(sql);
    log(
      `bench: ${opts.quick ? "quick" : "full"} run, ${fmt(opts.images)} images, ` +
        `${opts.concurrency} annotators`,
    );
    log(
      `PostgreSQL ${version.split(" ")[1]} (${database.kind}); fsync=${settings.fsync}, ` +
        `synchronous_commit=${settings.synchronous_commit}, shared_buffers=${settings.shared_buffers}`,
    );
    log(`machine: ${navigator.hardwareConcurrency} CPUs, load average ${loadBefore.join(" ")}`);
    log(`ceiling: ${pgbench && !opts.driver ? pgbench.version : "the driver (no pgbench)"}`);

    server = await startLoadServer({ databaseUrl: url, env: opts.serverEnv, timeoutMs: 60_000 });
    const rssAtStart = server.rssMiB();
    // The server's resident memory after each measured run: does it level off or keep growing?
    const rssAfter: { run: string; rss_mib: number; peak_mib: number }[] = [];
    const noteRss = (run: string) =>
      rssAfter.push({
        run,
        rss_mib: round(server!.rssMiB(), 1),
        peak_mib: round(server!.peakRssMiB(), 1),
      });
    const base = server.url;
    const adminToken = await adminTokenOf(base);
    const tokens = await createAnnotators(
      base,
      adminToken,
      opts.concurrency + 1,
      "bench-annotator",
    );
    const [{ id: explainUserId }] = await sql<{ id: string }[]>`
      SELECT id::text FROM users WHERE name = ${`bench-annotator-${opts.concurrency + 1}`}`;
    tokens.pop();
    const dataset = (name: string) => createDataset(base, adminToken, name);

    // Setup, not measured.
    let t = performance.now();
    const warmupId = await dataset("bench-warmup");
    const smallId = await dataset("bench-scale-small");
    const bigId = await dataset("bench-big");
    // The scale runs get a big dataset of their own: both of them start on an untouched queue.
    const scaleBigId = opts.skip.has("scale") ? undefined : await dataset("bench-scale-big");
    await seedImages(sql, "images", warmupId, 2_000);
    await seedImages(sql, "images", smallId, opts.smallImages);
    await seedImages(sql, "images", bigId, opts.images);
    if (scaleBigId) await seedImages(sql, "images", scaleBigId, opts.images);
    log(
      `\nsetup: ${scaleBigId ? "2 x " : ""}${fmt(opts.images)} + ${fmt(opts.smallImages)} ` +
        `images seeded ` +
        `in ${fmt((performance.now() - t) / 1000, 1)} s`,
    );
    const queue = "bench-annotate";
    if (!opts.skip.has("ceiling")) {
      t = performance.now();
      await sql.unsafe(sqlFile("naive_schema"));
      await seedImages(sql, "naive_images", "1", opts.images);
      log(`setup: ${fmt(opts.images)} naive_images in ${fmt((performance.now() - t) / 1000, 1)} s`);
    }
    if (!opts.skip.has("peer")) {
      t = performance.now();
      await seedPgBoss(url, queue, opts.images);
      log(`setup: ${fmt(opts.images)} pg-boss jobs in ${fmt((performance.now() - t) / 1000, 1)} s`);
    }
    t = performance.now();
    await sql`VACUUM (ANALYZE)`;
    log(`setup: VACUUM (ANALYZE) in ${fmt((performance.now() - t) / 1000, 1)} s`);

    const postmaster = await postmasterPid(sql);
    const ctx: Ctx = { opts, sql, url, server, postmaster, adminToken, tokens, pgbench, queue };
    const C = opts.concurrency;

    // Warm-up, not measured: JIT, prepared statements, connections, caches, for all three.
    await httpCycle(ctx, warmupId, C, 1_000);
    if (!opts.skip.has("ceiling")) await naiveCycle(ctx, C, C * 20);
    if (!opts.skip.has("peer")) await peerCycle(ctx, C, 1_000);
    // Statistics that know claims and annotations are no longer empty, as autovacuum's first
    // ANALYZE leaves them within a minute on a live system. Without it, the plans the server's
    // connections cached while those tables were empty scan them sequentially, and the cycle's
    // cost grows with every row (bench/README.md, "stale plans").
    if (!opts.staleStats) await sql`ANALYZE`;

    // 1-3: interleaved rounds.
    log(
      `\ncycle: ${C} concurrent, ${opts.rounds} rounds of ` +
        `${fmt(Math.ceil(opts.cycles / opts.rounds))} cycles per system`,
    );
    const perRound = Math.ceil(opts.cycles / opts.rounds);
    if (opts.pgStats) {
      await sql`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`;
      await sql`SELECT pg_stat_statements_reset()`;
    }
    const ours: HttpRun[] = [];
    const naive: (NaiveRun & { cpu: Cpu })[] = [];
    const peer: (PgBossResult & { wallS: number; cpu: Cpu })[] = [];
    const systems = ["ours", "ceiling", "peer"].filter((s) => !opts.skip.has(s));
    const say = (r: number, name: string, run: Run) => {
      const ms = (k: keyof Cpu) => fmt((1000 * run.cpu[k]) / run.cycles, 2);
      log(
        `  round ${r + 1} ${name.padEnd(8)} ${fmt(run.cycles / run.wallS).padStart(6)} cycles/s` +
          `   CPU ms/cycle: PostgreSQL ${ms("pg")}, server ${ms("server")}, ` +
          `clients ${ms("client")}`,
      );
    };
    for (let r = 0; r < opts.rounds; r++) {
      // Rotate the order so no system always runs first.
      const order = systems.map((_, i) => systems[(i + r) % systems.length]);
      for (const s of order) {
        await checkpoint(sql);
        if (s === "ours") {
          const run = await httpCycle(ctx, bigId, C, perRound);
          ours.push(run);
          say(r, "ours", run);
          noteRss(`cycle round ${r + 1}`);
        } else if (s === "ceiling") {
          const run = await naiveCycle(ctx, C, perRound);
          naive.push(run);
          say(r, "ceiling", run);
        } else {
          const run = await peerCycle(ctx, C, perRound);
          peer.push(run);
          say(r, "pg-boss", run);
        }
      }
    }
    const statements = opts.pgStats ? await topStatements(sql) : null;
    if (statements) {
      log("\nheaviest statements of the rounds (pg_stat_statements):");
      log("  calls   exec ms  plan ms  blks hit  WAL B  query");
      for (const st of statements) {
        log(
          `  ${String(st.calls).padStart(6)}  ${st.mean_exec_ms.toFixed(3).padStart(7)}  ` +
            `${st.mean_plan_ms.toFixed(3).padStart(7)}  ` +
            `${String(st.shared_blks_hit_per_call).padStart(8)}  ` +
            `${String(st.wal_bytes_per_call).padStart(5)}  ${st.query.slice(0, 120)}`,
        );
      }
    }
    const oursFigures = {
      ...summary(ours),
      claim: latency(ours.flatMap((r) => r.claimMs)),
      submit: latency(ours.flatMap((r) => r.submitMs)),
    };
    const naiveFigures = naive.length
      ? {
        runner: naive[0].runner,
        ...summary(naive),
        latency_mean_ms: round(
          naive.reduce((a, r) => a + r.latencyMeanMs * r.cycles, 0) /
            naive.reduce((a, r) => a + r.cycles, 0),
          3,
        ),
        statement_ms: naive[0].statementMs.map((_, i) =>
          round(naive.reduce((a, r) => a + (r.statementMs[i] ?? NaN), 0) / naive.length, 3)
        ),
      }
      : null;
    const peerFigures = peer.length
      ? {
        ...summary(peer),
        fetch: latency(peer.flatMap((r) => r.fetchMs)),
        complete: latency(peer.flatMap((r) => r.completeMs)),
      }
      : null;
    const rssAfterCycles = server.peakRssMiB();

    // 4: low concurrency.
    let low = null;
    const allRuns: HttpRun[] = [...ours];
    if (!opts.skip.has("low")) {
      await checkpoint(sql);
      const run = await httpCycle(ctx, bigId, opts.lowConcurrency, opts.lowCycles);
      allRuns.push(run);
      noteRss("low concurrency");
      low = {
        concurrency: opts.lowConcurrency,
        ...summary([run]),
        claim: latency(run.claimMs),
        submit: latency(run.submitMs),
      };
      log(
        `\nlow: ${opts.lowConcurrency} concurrent, ${fmt(low.cycles_per_s)} cycles/s, ` +
          `claim p50 ${low.claim.p50_ms} ms p99 ${low.claim.p99_ms} ms`,
      );
    }

    // 5: scale.
    let scale = null;
    const smallRuns: HttpRun[] = [];
    const bigRuns: HttpRun[] = [];
    if (scaleBigId) {
      // Interleaved, so load from elsewhere on the machine hits both.
      for (let r = 0; r < 2; r++) {
        await checkpoint(sql);
        smallRuns.push(await httpCycle(ctx, smallId, C, opts.scaleCycles));
        await checkpoint(sql);
        bigRuns.push(await httpCycle(ctx, scaleBigId, C, opts.scaleCycles));
        noteRss(`scale round ${r + 1}`);
      }
      scale = {
        small: { images: opts.smallImages, ...summary(smallRuns) },
        big: { images: opts.images, ...summary(bigRuns) },
      };
      log(
        `scale: ${fmt(opts.smallImages)} images ${fmt(scale.small.cycles_per_s)} claims/s, ` +
          `${fmt(opts.images)} images ${fmt(scale.big.cycles_per_s)} claims/s`,
      );
    }

    // The claim query's plan at full size.
    const claimText = Deno.readTextFileSync(
      new URL("../sql/claims/claim_next_image.sql", import.meta.url),
    );
    // Run for real, so inside a transaction that is rolled back; twice, the second one reported
    // (warm caches). `generic`: as a prepared statement with the generic plan, the one the
    // server's named statements may settle on after five executions.
    const explain = async (text: string, params: string[], generic = false) => {
      let plan = "";
      for (let i = 0; i < 2; i++) {
        await sql!.begin(async (tx) => {
          let rows;
          if (generic) {
            await tx`SET LOCAL plan_cache_mode = force_generic_plan`;
            await tx.unsafe(`PREPARE bench_plan AS ${text}`);
            rows = await tx.unsafe(
              `EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_plan(${params.join(", ")})`,
            );
            await tx.unsafe("DEALLOCATE bench_plan");
          } else {
            rows = await tx.unsafe(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, params);
          }
          plan = rows.map((row) => row["QUERY PLAN"]).join("\n");
          throw new RolledBack();
        }).catch((e) => {
          if (!(e instanceof RolledBack)) throw e;
        });
      }
      return plan;
    };
    const explainClaim = await explain(claimText, [bigId, explainUserId]);
    const explainClaimGeneric = await explain(claimText, [bigId, explainUserId], true);
    // The batched claim (the statement most claims take: lib/db/batcher.ts) for 16 annotators.
    const batchText = Deno.readTextFileSync(
      new URL("../sql/claims/claim_next_images.sql", import.meta.url),
    );
    const batchUsers = (await sql<{ id: string }[]>`
      SELECT id::text FROM users WHERE name LIKE 'bench-annotator-%' ORDER BY id LIMIT 16`)
      .map((r) => r.id);
    const usersParam = `'{${batchUsers.join(",")}}'`;
    const explainBatch = await explain(batchText, [bigId, `{${batchUsers.join(",")}}`]);
    const explainBatchGeneric = await explain(batchText, [bigId, usersParam], true);
    const naiveClaim = Deno.readTextFileSync(new URL("./naive_cycle.sql", import.meta.url))
      .split("\n").filter((l) => !l.startsWith("--")).join("\n").split("\\gset")[0]
      .replaceAll(":client_id", "0").replaceAll(":dataset_id", "1");
    const explainNaive = opts.skip.has("ceiling") ? null : await explain(naiveClaim, []);

    // No image handed to two annotators: the database's record, and what the clients saw.
    const handed = new Map<string, number>();
    for (const run of [...allRuns, ...smallRuns, ...bigRuns]) {
      for (const id of run.imageIds) handed.set(id, (handed.get(id) ?? 0) + 1);
    }
    const clientDuplicates = [...handed.values()].filter((n) => n > 1).length;
    const verify = sqlFile("verify_claims");
    const checks: Record<string, unknown>[] = [];
    let consistent = clientDuplicates === 0;
    for (
      const [name, id, expected] of [
        ["big", bigId, allRuns.reduce((a, r) => a + r.cycles, 0)],
        ["scale-small", smallId, smallRuns.reduce((a, r) => a + r.cycles, 0)],
        ["scale-big", scaleBigId, bigRuns.reduce((a, r) => a + r.cycles, 0)],
      ] as const
    ) {
      if (!id) continue;
      const [row] = await sql.unsafe(verify, [id]);
      const values = [
        row.claims,
        row.images_claimed,
        row.completed,
        row.annotations,
        row.images_annotated,
      ];
      const ok = values.every((v) => v === expected);
      consistent &&= ok;
      checks.push({ dataset: name, expected_cycles: expected, ...row, ok });
    }
    if (naive.length) {
      const [row] = await sql`
        SELECT count(*)::integer AS annotations, count(DISTINCT image_id)::integer AS images
        FROM naive_annotations`;
      checks.push({ dataset: "naive", ...row, ok: row.annotations === row.images });
    }
    log(
      `\nchecks: ${
        consistent ? "no image was handed to two annotators" : "INCONSISTENT"
      } (claims table, annotations, and the ${fmt(handed.size)} image ids the clients received)`,
    );

    // 6: ingest, in interleaved rounds as the cycle runs (the order alternating), so load from
    // elsewhere on the machine hits both sides of each ratio: in one run, COPY once went from
    // 46,682 to 59,719 images/s between two runs minutes apart.
    let ingest = null;
    if (!opts.skip.has("ingest")) {
      const n = opts.ingestImages;
      const batch = 10_000;
      const perRound = Math.ceil(n / batch / Math.max(1, opts.rounds)) * batch;
      const httpId = await dataset("bench-ingest-http");
      const copyId = await dataset("bench-ingest-copy");
      /** Each round's [first image index, count]. */
      const ranges: [number, number][] = [];
      for (let at = 0; at < n; at += perRound) ranges.push([at, Math.min(perRound, n - at)]);
      type Side = { wallS: number; cpuS: number; requestMs: number[]; rounds: number[] };
      const side = (): Side => ({ wallS: 0, cpuS: 0, requestMs: [], rounds: [] });
      /** Runs `http` and `raw` on each range, alternating which goes first. */
      const interleaved = async (
        http: (at: number, count: number) => Promise<{ wallS: number; requestMs: number[] }>,
        raw: (at: number, count: number) => Promise<number>,
      ) => {
        const ours = side();
        const ref = side();
        for (const [r, [at, count]] of ranges.entries()) {
          for (const which of r % 2 ? ["raw", "http"] : ["http", "raw"]) {
            await checkpoint(sql!);
            if (which === "http") {
              const cpu0 = server!.cpuSeconds();
              const run = await http(at, count);
              ours.cpuS += server!.cpuSeconds() - cpu0;
              ours.wallS += run.wallS;
              ours.requestMs.push(...run.requestMs);
              ours.rounds.push(round(count / run.wallS));
            } else {
              const wallS = await raw(at, count);
              ref.wallS += wallS;
              ref.rounds.push(round(count / wallS));
            }
          }
        }
        return { ours, ref };
      };
      const ingestHttp = async (job: IngestJob, count: number) => {
        const run = await runWorkers<IngestJob, IngestResult>(
          new URL("./workers/http_ingest.ts", import.meta.url),
          [job],
        );
        if (run.results[0].items !== count) {
          throw new Error(`${job.kind}: ${run.results[0].items} of ${count} items`);
        }
        return { wallS: run.wallS, requestMs: run.results[0].requestMs };
      };

      const reg = await interleaved(
        (at, count) =>
          ingestHttp({
            kind: "register",
            base,
            token: adminToken,
            datasetId: httpId,
            batch,
            tag: "ing",
            first: at + 1,
            count,
          }, count),
        async (at, count) => {
          const chunks: string[] = [];
          for (let k = at; k < at + count; k += batch) {
            chunks.push(copyText(copyId, "ing", k + 1, Math.min(batch, at + count - k)));
          }
          const t = performance.now();
          const writable = await sql!.unsafe(sqlFile("copy_images")).writable();
          await pipeline(Readable.from(chunks), writable);
          return (performance.now() - t) / 1000;
        },
      );
      noteRss("registerImages");

      const shuffled = async (id: string) => {
        const rows = await sql!<{ id: string }[]>`
          SELECT id::text FROM images WHERE dataset_id = ${id} ORDER BY random()`;
        return rows.map((r) => r.id);
      };
      const httpIds = await shuffled(httpId);
      const copyIds = await shuffled(copyId);
      if (httpIds.length !== n) throw new Error(`registerImages wrote ${httpIds.length} rows`);
      if (copyIds.length !== n) throw new Error(`COPY wrote ${copyIds.length} rows`);
      // Both datasets were just written: vacuum them now rather than let autovacuum start on
      // the images table in whichever run comes first (ours, in round 1: 0.50 of the unnest
      // UPDATE in that round against 0.70 and 0.77 in the next two, one run).
      {
        const t = performance.now();
        await sql!`VACUUM (ANALYZE) images`;
        log(
          `ingest: VACUUM (ANALYZE) images between the two in ${
            fmt((performance.now() - t) / 1000, 1)
          } s`,
        );
      }

      const unnest = sqlFile("unnest_priorities");
      const prio = await interleaved(
        (at, count) =>
          ingestHttp({
            kind: "priorities",
            base,
            token: adminToken,
            datasetId: httpId,
            batch,
            ids: httpIds.slice(at, at + count),
          }, count),
        async (at, count) => {
          const batches: [string[], number[]][] = [];
          for (let k = at; k < at + count; k += batch) {
            const ids = copyIds.slice(k, Math.min(k + batch, at + count));
            batches.push([ids, ids.map(() => Math.random())]);
          }
          const t = performance.now();
          let updated = 0;
          for (const [ids, priorities] of batches) {
            updated += (await sql!.unsafe(unnest, [ids, priorities], { prepare: true })).count;
          }
          if (updated !== count) throw new Error(`the unnest UPDATE set ${updated} of ${count}`);
          return (performance.now() - t) / 1000;
        },
      );
      noteRss("setPriorities");

      const perS = (items: number, s: number) => round(items / s);
      // Whether a request costs more as the dataset grows: the first and last tenth.
      const ends = (ms: number[]) => {
        const k = Math.max(1, Math.floor(ms.length / 10));
        const mean = (xs: number[]) => round(xs.reduce((a, b) => a + b, 0) / xs.length, 1);
        return {
          first_tenth_mean_ms: mean(ms.slice(0, k)),
          last_tenth_mean_ms: mean(ms.slice(-k)),
        };
      };
      ingest = {
        images: n,
        batch,
        rounds: ranges.length,
        register: {
          wall_s: round(reg.ours.wallS, 2),
          images_per_s: perS(n, reg.ours.wallS),
          rounds: reg.ours.rounds,
          request: latency(reg.ours.requestMs),
          ...ends(reg.ours.requestMs),
          server_cpu_s: round(reg.ours.cpuS, 2),
        },
        copy: {
          wall_s: round(reg.ref.wallS, 2),
          images_per_s: perS(n, reg.ref.wallS),
          rounds: reg.ref.rounds,
        },
        set_priorities: {
          wall_s: round(prio.ours.wallS, 2),
          rows_per_s: perS(n, prio.ours.wallS),
          rounds: prio.ours.rounds,
          request: latency(prio.ours.requestMs),
          ...ends(prio.ours.requestMs),
          server_cpu_s: round(prio.ours.cpuS, 2),
        },
        unnest_update: {
          wall_s: round(prio.ref.wallS, 2),
          rows_per_s: perS(n, prio.ref.wallS),
          rounds: prio.ref.rounds,
        },
      };
      log(
        `\ningest: registerImages ${fmt(ingest.register.images_per_s)}/s, COPY ` +
          `${fmt(ingest.copy.images_per_s)}/s; setPriorities ${
            fmt(ingest.set_priorities.rows_per_s)
          }` +
          `/s, unnest UPDATE ${fmt(ingest.unnest_update.rows_per_s)}/s`,
      );
      const pairs = (a: number[], b: number[]) =>
        a.map((x, i) => `${fmt(x)}/${fmt(b[i])}`).join(", ");
      log(
        `  by round: registerImages/COPY ${pairs(ingest.register.rounds, ingest.copy.rounds)}; ` +
          `setPriorities/UPDATE ${
            pairs(ingest.set_priorities.rounds, ingest.unnest_update.rounds)
          }`,
      );
    }

    // 7: memory.
    const memory = {
      rss_at_start_mib: round(rssAtStart, 1),
      after_each_run: rssAfter,
      peak_rss_mib: round(server.peakRssMiB(), 1),
      peak_rss_after_cycles_mib: round(rssAfterCycles, 1),
      rss_at_end_mib: round(server.rssMiB(), 1),
    };

    // The table.
    const ratio = (a: number, b: number) => round(a / b, 3);
    const rows: Ratio[] = [];
    const label = `${C} annotators, ${fmt(opts.images)} images`;
    rows.push({
      measure: `HTTP cycle / naive SQL cycle (${label})`,
      ours: `${fmt(oursFigures.cycles_per_s)} cycles/s`,
      reference: naiveFigures
        ? `${fmt(naiveFigures.cycles_per_s)} cycles/s (${naiveFigures.runner})`
        : "skipped",
      ratio: naiveFigures ? ratio(oursFigures.cycles_per_s, naiveFigures.cycles_per_s) : null,
      must: ">= 0.8",
      aim: ">= 1.0",
      pass: naiveFigures ? oursFigures.cycles_per_s / naiveFigures.cycles_per_s >= 0.8 : null,
    });
    rows.push({
      measure: `HTTP cycle / pg-boss fetch+complete (${C} concurrent)`,
      ours: `${fmt(oursFigures.cycles_per_s)} cycles/s`,
      reference: peerFigures ? `${fmt(peerFigures.cycles_per_s)} cycles/s (pg-boss)` : "skipped",
      ratio: peerFigures ? ratio(oursFigures.cycles_per_s, peerFigures.cycles_per_s) : null,
      must: ">= 1.2",
      aim: ">= 1.5",
      pass: peerFigures ? oursFigures.cycles_per_s / peerFigures.cycles_per_s >= 1.2 : null,
    });
    rows.push({
      measure: `claims/s at ${fmt(opts.images)} / at ${fmt(opts.smallImages)} images`,
      ours: scale ? `${fmt(scale.big.cycles_per_s)} claims/s` : "skipped",
      reference: scale ? `${fmt(scale.small.cycles_per_s)} claims/s` : "skipped",
      ratio: scale ? ratio(scale.big.cycles_per_s, scale.small.cycles_per_s) : null,
      must: ">= 0.85",
      aim: ">= 0.95",
      pass: scale ? scale.big.cycles_per_s / scale.small.cycles_per_s >= 0.85 : null,
    });
    rows.push({
      measure: `claim p50 / p99 at ${C} annotators`,
      ours: `${oursFigures.claim.p50_ms} / ${oursFigures.claim.p99_ms} ms`,
      reference: `submit ${oursFigures.submit.p50_ms} / ${oursFigures.submit.p99_ms} ms`,
      ratio: null,
      must: "",
      aim: "",
      pass: true,
    });
    rows.push({
      measure: `claim p99 at ${opts.lowConcurrency} annotators`,
      ours: low ? `${low.claim.p99_ms} ms (p50 ${low.claim.p50_ms})` : "skipped",
      reference: low ? `submit ${low.submit.p50_ms} / ${low.submit.p99_ms} ms` : "",
      ratio: null,
      must: "<= 15 ms",
      aim: "<= 5 ms",
      pass: low ? low.claim.p99_ms <= 15 : null,
    });
    rows.push({
      measure: `registerImages / raw COPY (${fmt(opts.ingestImages)} images)`,
      ours: ingest ? `${fmt(ingest.register.images_per_s)} images/s` : "skipped",
      reference: ingest ? `${fmt(ingest.copy.images_per_s)} images/s` : "skipped",
      ratio: ingest ? ratio(ingest.register.images_per_s, ingest.copy.images_per_s) : null,
      must: ">= 0.5",
      aim: ">= 0.8",
      pass: ingest ? ingest.register.images_per_s / ingest.copy.images_per_s >= 0.5 : null,
    });
    rows.push({
      measure: `setPriorities / raw unnest UPDATE (${fmt(opts.ingestImages)})`,
      ours: ingest ? `${fmt(ingest.set_priorities.rows_per_s)} rows/s` : "skipped",
      reference: ingest ? `${fmt(ingest.unnest_update.rows_per_s)} rows/s` : "skipped",
      ratio: ingest
        ? ratio(ingest.set_priorities.rows_per_s, ingest.unnest_update.rows_per_s)
        : null,
      must: ">= 0.7",
      aim: ">= 0.9",
      pass: ingest
        ? ingest.set_priorities.rows_per_s / ingest.unnest_update.rows_per_s >= 0.7
        : null,
    });
    rows.push({
      measure: "server peak RSS (VmHWM)",
      ours: `${fmt(memory.peak_rss_mib, 1)} MiB`,
      reference: `${fmt(memory.peak_rss_after_cycles_mib, 1)} MiB after the cycles`,
      ratio: null,
      must: "<= 200 MB",
      aim: "<= 120 MB",
      pass: memory.peak_rss_mib * 1.048576 <= 200,
    });
    rows.push({
      measure: "no image handed to two annotators",
      ours: consistent ? "none" : "SOME",
      reference: `${fmt(handed.size)} claims checked`,
      ratio: null,
      must: "none",
      aim: "",
      pass: consistent,
    });
    const loadAfter = loadAverage();
    log("");
    printTable(rows);
    log(
      `\nload average before ${loadBefore.join(" ")}, after ${loadAfter.join(" ")}; ` +
        `${fmt((performance.now() - started) / 1000)} s in all`,
    );

    if (opts.json) {
      const result = {
        benchmark: "annotation-server bench",
        mode: opts.quick ? "quick" : "full",
        date: new Date().toISOString(),
        postgres: version,
        database: database.kind,
        settings,
        cpus: navigator.hardwareConcurrency,
        load_average: { before: loadBefore, after: loadAfter },
        options: { ...opts, skip: [...opts.skip] },
        ratios: rows,
        cycle: { ours: oursFigures, ceiling: naiveFigures, peer: peerFigures },
        low,
        scale,
        ingest,
        memory,
        checks,
        statements,
        client_duplicates: clientDuplicates,
        explain: {
          claim_next_image: explainClaim,
          claim_next_image_generic: explainClaimGeneric,
          claim_next_images_16: explainBatch,
          claim_next_images_16_generic: explainBatchGeneric,
          naive_claim: explainNaive,
        },
        pgbench: pgbench?.version ?? null,
        wall_s: round((performance.now() - started) / 1000, 1),
      };
      await Deno.writeTextFile(opts.json, JSON.stringify(result, null, 2) + "\n");
      log(`figures written to ${opts.json}`);
    }
    const lines = server.lines.filter((l) => l.includes('"error"'));
    if (lines.length) log(`server errors:\n${lines.slice(-10).join("\n")}`);
    return consistent ? 0 : 1;
  } finally {
    await server?.stop();
    await sql?.end({ timeout: 5 });
    await database?.stop();
  }
}

class RolledBack extends Error {}

if (import.meta.main) {
  try {
    Deno.exit(await main(parseArgs(Deno.args)));
  } catch (e) {
    console.error(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    Deno.exit(1);
  }
}
