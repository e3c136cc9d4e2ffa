/**
 * What every section of the bench gets (the database, the server, the annotators' tokens), and
 * the helpers they share: printing, the bench's SQL files, a checkpoint before each measured
 * run, and CPU metering of a run across the three parties.
 */
import type postgres from "postgres";
import type { ServerProcess } from "../../testkit/process.ts";
import { childrenCpuSeconds, clusterCpuSeconds, cpuSeconds } from "../../testkit/proc.ts";
import { sleep } from "../../testkit/time.ts";
import type { Options } from "../options.ts";
import { round } from "./stats.ts";

export interface Ctx {
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
  /** The pg-boss queue the peer works. */
  queue: string;
  /** Records the server's memory after each measured run. */
  noteRss(run: string): void;
}

export const log = (line: string) => console.log(line);

export const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "-";

/** One of bench/sql/*.sql. */
export const sqlFile = (name: string) =>
  Deno.readTextFileSync(new URL(`../sql/${name}.sql`, import.meta.url));

/** Flushes dirty pages before a measured run, so no run pays for an earlier one's checkpoint. */
export async function checkpoint(sql: postgres.Sql): Promise<void> {
  try {
    await sql`CHECKPOINT`;
  } catch {
    // Not a superuser (DATABASE_URL): runs then share checkpoints as they fall.
  }
}

/** CPU seconds: the server process, this process and its finished children, the cluster. */
export interface Cpu {
  server: number;
  client: number;
  pg: number;
}

export interface Run {
  cycles: number;
  wallS: number;
  /** CPU used during the run (pgbench counts as client: a finished child of this process). */
  cpu: Cpu;
}

function cpuNow(ctx: Ctx): Cpu {
  return {
    server: ctx.server.cpuSeconds(),
    client: cpuSeconds("self") + childrenCpuSeconds("self"),
    pg: ctx.postmaster ? clusterCpuSeconds(ctx.postmaster) : NaN,
  };
}

/** Runs `fn`, adding the CPU each party used meanwhile to its answer. */
export async function metered<R>(ctx: Ctx, fn: () => Promise<R>): Promise<R & { cpu: Cpu }> {
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

export interface RateFigures {
  cycles: number;
  wall_s: number;
  cycles_per_s: number;
}

export const rate = (cycles: number, wallS: number): RateFigures => ({
  cycles,
  wall_s: round(wallS, 2),
  cycles_per_s: round(cycles / wallS, 1),
});

/** Rate and CPU per cycle of a set of runs of one system. */
export function summary(runs: Run[]) {
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
