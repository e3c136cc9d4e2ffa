/**
 * The raw-SQL ceiling: bench/naive_cycle.sql run by pgbench when it is installed (Debian's
 * postgresql-client packages), else by the driver in Workers (bench/workers/naive_driver.ts).
 */
import type { NaiveJob, NaiveResult } from "../workers/naive_driver.ts";
import { budget, runWorkers, split } from "./workers.ts";

export const NAIVE_SCRIPT = new URL("../naive_cycle.sql", import.meta.url);

export interface NaiveRun {
  runner: string;
  cycles: number;
  wallS: number;
  /** Mean cycle latency, ms. */
  latencyMeanMs: number;
  /** Mean latency of each statement, ms (pgbench -r), in script order. */
  statementMs: number[];
}

/** A pgbench that runs here, or undefined. */
export async function findPgbench(): Promise<{ path: string; version: string } | undefined> {
  const candidates = ["pgbench"];
  for (const dir of ["/usr/lib/postgresql", "/usr/local/pgsql"]) {
    try {
      for await (const e of Deno.readDir(dir)) candidates.push(`${dir}/${e.name}/bin/pgbench`);
    } catch {
      // not there
    }
  }
  for (const path of candidates) {
    try {
      const out = await new Deno.Command(path, { args: ["--version"], stderr: "null" }).output();
      if (out.success) return { path, version: new TextDecoder().decode(out.stdout).trim() };
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** `clients` pgbench clients, `perClient` cycles each, on the database at `url`. */
export async function runPgbench(
  pgbench: string,
  url: string,
  clients: number,
  perClient: number,
  vars: Record<string, string>,
): Promise<NaiveRun> {
  const u = new URL(url);
  const args = [
    "--no-vacuum",
    "--protocol=prepared",
    "--report-per-command",
    `--client=${clients}`,
    "--jobs=1",
    `--transactions=${perClient}`,
    `--file=${decodeURIComponent(NAIVE_SCRIPT.pathname)}`,
    ...Object.entries(vars).map(([k, v]) => `--define=${k}=${v}`),
    `--host=${u.hostname}`,
    `--port=${u.port || 5432}`,
    `--username=${decodeURIComponent(u.username)}`,
    decodeURIComponent(u.pathname.slice(1)),
  ];
  const started = performance.now();
  const out = await new Deno.Command(pgbench, {
    args,
    env: { PGPASSWORD: decodeURIComponent(u.password), PGAPPNAME: "bench-pgbench" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wallS = (performance.now() - started) / 1000;
  const text = new TextDecoder().decode(out.stdout);
  const errors = new TextDecoder().decode(out.stderr);
  const processed = /number of transactions actually processed: (\d+)/.exec(text);
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(text);
  const failed = /number of failed transactions: (\d+)/.exec(text);
  if (!out.success || !processed || !tps || (failed && Number(failed[1]) > 0)) {
    throw new Error(`pgbench failed (exit ${out.code}):\n${text}\n${errors}`);
  }
  const cycles = Number(processed[1]);
  if (cycles !== clients * perClient) {
    throw new Error(`pgbench processed ${cycles} of ${clients * perClient} cycles:\n${errors}`);
  }
  // Per-command lines: "         0.532           0  UPDATE naive_images ..." (ms, failures, text).
  const perCommand = text.split("statement latencies in milliseconds")[1] ?? "";
  const statementMs = [...perCommand.matchAll(/^\s+([\d.]+)\s+\d+\s+\S/gm)].map((m) =>
    Number(m[1])
  );
  const latency = /latency average = ([\d.]+) ms/.exec(text);
  return {
    runner: "pgbench",
    cycles,
    // pgbench's own rate excludes connecting; wall time is what the rate implies.
    wallS: Math.min(wallS, cycles / Number(tps[1])),
    latencyMeanMs: latency ? Number(latency[1]) : NaN,
    statementMs,
  };
}

/** The same script through postgres.js: one connection per client, clients split over workers. */
export async function runNaiveDriver(
  url: string,
  clients: number,
  perClient: number,
  vars: Record<string, string>,
  workers = 2,
): Promise<NaiveRun> {
  const script = await Deno.readTextFile(NAIVE_SCRIPT);
  const shared = budget(clients * perClient);
  const ids = Array.from({ length: clients }, (_, i) => i);
  const { wallS, results } = await runWorkers<NaiveJob, NaiveResult>(
    new URL("../workers/naive_driver.ts", import.meta.url),
    split(ids, workers).map((clientIds) => ({ url, script, clientIds, vars, budget: shared })),
  );
  const all = results.flatMap((r) => r.cycleMs);
  return {
    runner: "driver (postgres.js)",
    cycles: all.length,
    wallS,
    latencyMeanMs: all.reduce((a, b) => a + b, 0) / Math.max(1, all.length),
    statementMs: [],
  };
}
