/**
 * Who spent the machine's CPU during a measured run, read from /proc in one pass, and which of it
 * a system's cycle costs when its load generator is left out: the figure that does not depend on
 * where the clients run (on a 2-core machine, every tick a client spends is taken from the server
 * and PostgreSQL, so throughput does).
 *
 * - The HTTP cycle (ours): PostgreSQL + the server. The annotators are the bench's Workers.
 * - The naive cycle by pgbench: PostgreSQL + pgbench. pgbench plays the application that sends
 *   the three statements, so it is part of what the naive design costs.
 * - The naive cycle by the driver, and pg-boss: PostgreSQL + the bench's own process, where the
 *   driver's loop and pg-boss run (the only figure there is; the coordinator waits meanwhile).
 */
import { type ProcStat, treeCpuSeconds } from "../../testkit/proc.ts";
import { round } from "./stats.ts";

/** CPU seconds per party (cumulative in a sample, used during a run in a delta). */
export interface Cpu {
  /** The server process and every process under it. */
  server: number;
  /** The PostgreSQL cluster: its postmaster and every process under it, live or ended. */
  pg: number;
  /** This process's own threads: the load generators (Workers) and the coordinator. */
  loadgen: number;
  /** This process's children that ended and were reaped: pgbench, during a pgbench run. */
  reaped: number;
}

/** How a system's cycles were served, which decides whose CPU counts as the machine's. */
export type Serving = "http" | "pgbench" | "driver" | "peer";

/** The processes to account for; a party whose pid is unknown reads NaN. */
export interface Parties {
  server?: number;
  postmaster?: number;
  self: number;
}

/** Every party's CPU seconds so far, from one reading of the process table. */
export function sampleCpu(table: Map<number, ProcStat>, parties: Parties): Cpu {
  const self = table.get(parties.self);
  return {
    server: parties.server === undefined ? NaN : treeCpuSeconds(table, parties.server),
    pg: parties.postmaster === undefined ? NaN : treeCpuSeconds(table, parties.postmaster),
    loadgen: self ? self.ticks / 100 : NaN,
    reaped: self ? self.reapedTicks / 100 : NaN,
  };
}

export function cpuDelta(before: Cpu, after: Cpu): Cpu {
  return {
    server: after.server - before.server,
    pg: after.pg - before.pg,
    loadgen: after.loadgen - before.loadgen,
    reaped: after.reaped - before.reaped,
  };
}

/** The CPU that served the cycles, clients excluded (NaN when PostgreSQL runs elsewhere). */
export function machineCpu(serving: Serving, cpu: Cpu): number {
  switch (serving) {
    case "http":
      return cpu.pg + cpu.server;
    case "pgbench":
      return cpu.pg + cpu.reaped;
    case "driver":
    case "peer":
      return cpu.pg + cpu.loadgen;
  }
}

export interface CpuPerCycle {
  /** PostgreSQL + what served the cycles (the server, or pgbench): the efficiency figure. */
  machine: number;
  pg: number;
  server: number;
  /** pgbench, on the naive side. */
  pgbench: number;
  /** The load generators (ours), or the driver / pg-boss in this process. */
  loadgen: number;
}

/** Milliseconds of CPU per cycle, per party and for the machine, over runs of one system. */
export function cpuPerCycle(serving: Serving, runs: { cycles: number; cpu: Cpu }[]): CpuPerCycle {
  const cycles = runs.reduce((a, r) => a + r.cycles, 0);
  const ms = (f: (c: Cpu) => number) =>
    round((1000 * runs.reduce((a, r) => a + f(r.cpu), 0)) / cycles, 3);
  return {
    machine: ms((c) => machineCpu(serving, c)),
    pg: ms((c) => c.pg),
    server: ms((c) => c.server),
    pgbench: serving === "pgbench" ? ms((c) => c.reaped) : 0,
    loadgen: ms((c) => c.loadgen),
  };
}
