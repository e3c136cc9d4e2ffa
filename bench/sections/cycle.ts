/**
 * Sections 1-3: the annotator cycle of ours (HTTP, with the lean client and with plain fetch
 * clients, and the fused cycle when the server has it), the raw-SQL ceiling
 * (bench/naive_cycle.sql by pgbench, or the driver) and the peer (pg-boss fetch + complete), at
 * the same concurrency, in interleaved rounds whose order rotates, so load from elsewhere on the
 * machine hits them all. Each run's CPU is metered per party (bench/lib/cpu.ts).
 */
import { type NaiveRun, runNaiveDriver, runPgbench } from "../lib/pgbench.ts";
import { topStatements } from "../lib/database.ts";
import { checkpoint, type Ctx, fmt, log, metered, type Run, summary } from "../lib/context.ts";
import { type Cpu, cpuPerCycle, type Serving } from "../lib/cpu.ts";
import { latency, round } from "../lib/stats.ts";
import { budget, runWorkers, split } from "../lib/workers.ts";
import type { FetchCycleJob } from "../workers/fetch_cycle.ts";
import type { CycleJob, CycleResult } from "../workers/http_cycle.ts";
import type { PgBossJob, PgBossResult } from "../workers/pgboss.ts";

export interface HttpRun extends Run {
  claimMs: number[];
  submitMs: number[];
  imageIds: string[];
  /** Fused cycle: next claims that failed after the submit and were claimed apart. */
  nextErrors: number;
}

/**
 * The annotators' client: "lean", the bench's HTTP/1.1 client (bench/lib/http1.ts); "fetch",
 * plain `fetch` as users write it; "fused", `fetch` with the submit bringing the next claim.
 */
export type Client = "lean" | "fetch" | "fused";

/** `annotators` of ctx.tokens loop claim -> submit on a dataset until `cycles` are done. */
export async function httpCycle(
  ctx: Ctx,
  datasetId: string,
  annotators: number,
  cycles: number,
  client: Client = "lean",
): Promise<HttpRun> {
  const shared = budget(cycles);
  const groups = split(ctx.tokens.slice(0, annotators), Math.min(ctx.opts.loadWorkers, annotators));
  const base = ctx.server.url;
  const { wallS, results, cpu, wal } = await metered(
    ctx,
    () =>
      client === "lean"
        ? runWorkers<CycleJob, CycleResult>(
          new URL("../workers/http_cycle.ts", import.meta.url),
          groups.map((tokens) => ({ base, datasetId, tokens, budget: shared })),
        )
        : runWorkers<FetchCycleJob, CycleResult>(
          new URL("../workers/fetch_cycle.ts", import.meta.url),
          groups.map((tokens) => ({
            base,
            datasetId,
            tokens,
            budget: shared,
            loop: client === "fused" ? "fused" : "two-request",
          })),
        ),
  );
  const run: HttpRun = {
    cycles: results.reduce((a, r) => a + r.cycles, 0),
    wallS,
    cpu,
    wal,
    claimMs: results.flatMap((r) => r.claimMs),
    submitMs: results.flatMap((r) => r.submitMs),
    imageIds: results.flatMap((r) => r.imageIds),
    nextErrors: results.reduce((a, r) => a + (r.nextErrors ?? 0), 0),
  };
  if (run.cycles !== cycles) {
    throw new Error(`the ${client} HTTP cycle ran ${run.cycles} of ${cycles} cycles (drained?)`);
  }
  return run;
}

/** The raw-SQL ceiling on the naive table (its dataset 1). */
export async function naiveCycle(ctx: Ctx, clients: number, cycles: number, datasetId = "1") {
  const perClient = Math.ceil(cycles / clients);
  const vars = { dataset_id: datasetId };
  return await metered(
    ctx,
    () =>
      ctx.pgbench && !ctx.opts.driver
        ? runPgbench(ctx.pgbench.path, ctx.url, clients, perClient, vars)
        : runNaiveDriver(ctx.url, clients, perClient, vars),
  );
}

/** pg-boss fetch + complete on ctx.queue. */
export async function peerCycle(ctx: Ctx, concurrency: number, cycles: number) {
  const { wallS, results: [r], cpu, wal } = await metered(
    ctx,
    () =>
      runWorkers<PgBossJob, PgBossResult>(new URL("../workers/pgboss.ts", import.meta.url), [{
        url: ctx.url,
        queue: ctx.queue,
        concurrency,
        poolMax: 10,
        budget: budget(cycles),
      }]),
  );
  if (r.cycles !== cycles) throw new Error(`pg-boss ran ${r.cycles} of ${cycles} cycles`);
  return { ...r, wallS, cpu, wal };
}

type Timed = Run & { cycles: number };

/**
 * The rounds: ours with the lean client and with plain fetch clients, the fused cycle when the
 * server has it, the ceiling and the peer, each on a queue of its own (`datasets`: a big dataset
 * per client); with --pg-stats, the statements that took the most time.
 */
export async function cycleSection(ctx: Ctx, datasets: Record<Client, string | undefined>) {
  const { opts, sql } = ctx;
  const C = opts.concurrency;
  const perRound = Math.ceil(opts.cycles / opts.rounds);
  const systems = ["ours", "fetch", "fused", "ceiling", "peer"].filter((s) =>
    !opts.skip.has(s) && (s !== "fused" || ctx.fused.supported)
  );
  log(
    `\ncycle: ${C} concurrent, ${opts.rounds} rounds of ${fmt(perRound)} cycles per system ` +
      `(${systems.join(", ")})`,
  );
  if (!ctx.fused.supported) log(`  fused cycle: ${ctx.fused.note}`);
  if (opts.pgStats) {
    await sql`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`;
    await sql`SELECT pg_stat_statements_reset()`;
  }
  const http: Record<Client, HttpRun[]> = { lean: [], fetch: [], fused: [] };
  const naive: (NaiveRun & { cpu: Cpu })[] = [];
  const peer: (PgBossResult & { wallS: number; cpu: Cpu })[] = [];
  const naiveServing = (): Serving => naive[0]?.runner === "pgbench" ? "pgbench" : "driver";
  const say = (r: number, name: string, serving: Serving, run: Timed) => {
    const c = cpuPerCycle(serving, [run]);
    const parts = serving === "http"
      ? `PostgreSQL ${fmt(c.pg, 2)} + server ${fmt(c.server, 2)}; clients ${fmt(c.loadgen, 2)}`
      : serving === "pgbench"
      ? `PostgreSQL ${fmt(c.pg, 2)} + pgbench ${fmt(c.pgbench, 2)}`
      : `PostgreSQL ${fmt(c.pg, 2)} + ${serving === "peer" ? "pg-boss" : "driver"} ` +
        `${fmt(c.loadgen, 2)}`;
    log(
      `  round ${r + 1} ${name.padEnd(8)} ${fmt(run.cycles / run.wallS).padStart(6)} cycles/s` +
        `   CPU ms/cycle: ${fmt(c.machine, 2)} (${parts})` +
        (run.wal
          ? `   WAL/cycle: ${fmt(run.wal.bytes / run.cycles / 1024, 1)} KiB, ` +
            `${fmt(run.wal.fpi / run.cycles, 2)} full pages`
          : ""),
    );
  };
  const names: Record<Client, string> = { lean: "ours", fetch: "fetch", fused: "fused" };
  for (let r = 0; r < opts.rounds; r++) {
    // Rotate the order so no system always runs first.
    const order = systems.map((_, i) => systems[(i + r) % systems.length]);
    for (const s of order) {
      await checkpoint(sql);
      if (s === "ceiling") {
        const run = await naiveCycle(ctx, C, perRound);
        naive.push(run);
        say(r, "ceiling", naiveServing(), run);
      } else if (s === "peer") {
        const run = await peerCycle(ctx, C, perRound);
        peer.push(run);
        say(r, "pg-boss", "peer", run);
      } else {
        const client: Client = s === "ours" ? "lean" : s as Client;
        const run = await httpCycle(ctx, datasets[client]!, C, perRound, client);
        http[client].push(run);
        say(r, names[client], "http", run);
        ctx.noteRss(`cycle round ${r + 1} (${names[client]})`);
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
  const httpFigures = (runs: HttpRun[]) =>
    runs.length
      ? {
        ...summary(runs, "http"),
        claim: latency(runs.flatMap((r) => r.claimMs)),
        submit: latency(runs.flatMap((r) => r.submitMs)),
        next_errors: runs.reduce((a, r) => a + r.nextErrors, 0),
      }
      : null;
  const naiveFigures = naive.length
    ? {
      runner: naive[0].runner,
      ...summary(naive, naiveServing()),
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
      ...summary(peer, "peer"),
      fetch: latency(peer.flatMap((r) => r.fetchMs)),
      complete: latency(peer.flatMap((r) => r.completeMs)),
    }
    : null;
  return {
    /** Each client's HTTP runs, for the checks. */
    httpRuns: http,
    naiveRuns: naive.length,
    statements,
    figures: {
      ours: httpFigures(http.lean),
      fetch: httpFigures(http.fetch),
      fused: httpFigures(http.fused),
      fused_support: ctx.fused,
      ceiling: naiveFigures,
      peer: peerFigures,
    },
  };
}
