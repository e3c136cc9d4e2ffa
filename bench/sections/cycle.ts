/**
 * Sections 1-3: the annotator cycle of ours (HTTP), the raw-SQL ceiling (bench/naive_cycle.sql by
 * pgbench, or the driver) and the peer (pg-boss fetch + complete), at the same concurrency, in
 * interleaved rounds whose order rotates, so load from elsewhere on the machine hits all three.
 */
import { type NaiveRun, runNaiveDriver, runPgbench } from "../lib/pgbench.ts";
import { topStatements } from "../lib/database.ts";
import {
  checkpoint,
  type Cpu,
  type Ctx,
  fmt,
  log,
  metered,
  type Run,
  summary,
} from "../lib/context.ts";
import { latency, round } from "../lib/stats.ts";
import { budget, runWorkers, split } from "../lib/workers.ts";
import type { CycleJob, CycleResult } from "../workers/http_cycle.ts";
import type { PgBossJob, PgBossResult } from "../workers/pgboss.ts";

export interface HttpRun extends Run {
  claimMs: number[];
  submitMs: number[];
  imageIds: string[];
}

/** `annotators` of ctx.tokens loop claim -> submit on a dataset until `cycles` are done. */
export async function httpCycle(
  ctx: Ctx,
  datasetId: string,
  annotators: number,
  cycles: number,
): Promise<HttpRun> {
  const shared = budget(cycles);
  const workers = Math.min(ctx.opts.loadWorkers, annotators);
  const { wallS, results, cpu } = await metered(ctx, () =>
    runWorkers<CycleJob, CycleResult>(
      new URL("../workers/http_cycle.ts", import.meta.url),
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

/** The raw-SQL ceiling on the naive table (its dataset 1). */
export async function naiveCycle(ctx: Ctx, clients: number, cycles: number) {
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

/** pg-boss fetch + complete on ctx.queue. */
export async function peerCycle(ctx: Ctx, concurrency: number, cycles: number) {
  const { wallS, results: [r], cpu } = await metered(
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
  return { ...r, wallS, cpu };
}

/** The rounds on the big dataset; with --pg-stats, the statements that took the most time. */
export async function cycleSection(ctx: Ctx, datasetId: string) {
  const { opts, sql } = ctx;
  const C = opts.concurrency;
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
        const run = await httpCycle(ctx, datasetId, C, perRound);
        ours.push(run);
        say(r, "ours", run);
        ctx.noteRss(`cycle round ${r + 1}`);
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
  return {
    ours,
    naiveRuns: naive.length,
    statements,
    figures: { ours: oursFigures, ceiling: naiveFigures, peer: peerFigures },
  };
}
