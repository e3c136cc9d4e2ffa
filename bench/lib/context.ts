/**
 * What every section of the bench gets (the database, the server, the annotators' tokens), and
 * the helpers they share: printing, the bench's SQL files, a checkpoint before each measured
 * run, and CPU metering of a run across its parties (bench/lib/cpu.ts).
 */
import type postgres from "postgres";
import type { ServerProcess } from "../../testkit/process.ts";
import { processTable } from "../../testkit/proc.ts";
import { sleep } from "../../testkit/time.ts";
import type { Options } from "../options.ts";
import { type Cpu, cpuDelta, cpuPerCycle, sampleCpu, type Serving } from "./cpu.ts";
import type { FusedSupport } from "./spec.ts";
import { round } from "./stats.ts";

export interface Ctx {
  opts: Options;
  sql: postgres.Sql;
  url: string;
  server: ServerProcess;
  /** The environment the server was started with beyond production's (for more servers alike). */
  serverEnv: Record<string, string>;
  /** The cluster's postmaster, when it runs on this machine (for its CPU time). */
  postmaster?: number;
  adminToken: string;
  /** Annotator tokens, one per concurrent annotator. */
  tokens: string[];
  pgbench?: { path: string; version: string };
  /** The pg-boss queue the peer works. */
  queue: string;
  /** Whether the server answers a submit with the next claim (its OpenAPI document says). */
  fused: FusedSupport;
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

export interface Run {
  cycles: number;
  wallS: number;
  /** CPU each party used during the run (bench/lib/cpu.ts). */
  cpu: Cpu;
  /** The WAL the cluster wrote during the run (pg_stat_wal): bytes and full-page images. */
  wal?: Wal;
}

export interface Wal {
  bytes: number;
  fpi: number;
}

/** The cluster's WAL so far (pg_stat_wal); undefined before PostgreSQL 14. */
export async function walNow(sql: postgres.Sql): Promise<Wal | undefined> {
  try {
    const [w] = await sql<{ bytes: string; fpi: string }[]>`
      SELECT wal_bytes::text AS bytes, wal_fpi::text AS fpi FROM pg_stat_wal`;
    return { bytes: Number(w.bytes), fpi: Number(w.fpi) };
  } catch {
    return undefined; // pg_stat_wal needs PostgreSQL 14
  }
}

function cpuNow(ctx: Ctx): Cpu {
  return sampleCpu(processTable(), {
    server: ctx.server.pid,
    postmaster: ctx.postmaster,
    self: Deno.pid,
  });
}

/**
 * Runs `fn`, adding the CPU each party used meanwhile to its answer, and the WAL the cluster
 * wrote (the runs of a round follow one another, so it is this run's).
 */
export async function metered<R>(
  ctx: Ctx,
  fn: () => Promise<R>,
): Promise<R & { cpu: Cpu; wal?: Wal }> {
  const wal0 = await walNow(ctx.sql);
  const before = cpuNow(ctx);
  const r = await fn();
  // Connections that just closed: let their backends exit and be reaped (their CPU then moves
  // to the postmaster's account) rather than vanish between the two reads.
  await sleep(300);
  const cpu = cpuDelta(before, cpuNow(ctx));
  const wal1 = await walNow(ctx.sql);
  const wal = wal0 && wal1
    ? { bytes: wal1.bytes - wal0.bytes, fpi: wal1.fpi - wal0.fpi }
    : undefined;
  return { ...r, cpu, wal };
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

/** Rate and CPU per cycle of a set of runs of one system, served as `serving` says. */
export function summary(runs: Run[], serving: Serving) {
  const cycles = runs.reduce((a, r) => a + r.cycles, 0);
  const wallS = runs.reduce((a, r) => a + r.wallS, 0);
  const metered = runs.every((r) => r.wal);
  const wal = (k: keyof Wal) => runs.reduce((a, r) => a + (r.wal?.[k] ?? 0), 0) / cycles;
  return {
    ...rate(cycles, wallS),
    cpu_ms_per_cycle: cpuPerCycle(serving, runs),
    /** WAL written per cycle: KiB and full-page images (null without pg_stat_wal). */
    wal_per_cycle: metered
      ? { kib: round(wal("bytes") / 1024, 2), full_page_images: round(wal("fpi"), 2) }
      : null,
    rounds: runs.map((r) => round(r.cycles / r.wallS, 1)),
  };
}
