/**
 * `deno task stress [--quick] [--only=name,name]`: attacks the service as it runs in production
 * (real `main.ts` processes, a real PostgreSQL of its own) and prints a summary table: test, load,
 * faults injected, violations found. Exits 1 when anything was violated.
 *
 *   claims     no double claims: 64 annotators on 2 servers, ≥ 20,000 claims, short leases
 *   crash      no acknowledged write lost: kill -9 of the server under full write load, repeated
 *   db         PostgreSQL stopped and crashed under load: 503s, no hangs, back within 5 s
 *   fuzz       bad input generated from /api/openapi.json (≥ 5,000 requests)
 *   auth       forged, expired, foreign and escalating credentials against the real server
 *   limits     slow clients, oversized bodies, 1,000 concurrent connections
 *
 * `--quick` shrinks every load (a smoke run of the suite itself, about a minute).
 */
import { freePort } from "../lib/embedded_pg.ts";
import { startCluster } from "./lib/pg.ts";
import type { Ctx, Result, Scenario } from "./lib/scenario.ts";
import { authScenario } from "./scenarios/auth.ts";
import { claimsScenario } from "./scenarios/claims.ts";
import { crashScenario } from "./scenarios/crash.ts";
import { dbRestartScenario } from "./scenarios/db_restart.ts";
import { fuzzScenario } from "./scenarios/fuzz.ts";
import { limitsScenario } from "./scenarios/limits.ts";

const SCENARIOS: Scenario[] = [
  claimsScenario,
  crashScenario,
  dbRestartScenario,
  fuzzScenario,
  authScenario,
  limitsScenario,
];

function parseArgs(args: string[]) {
  const only = args.find((a) => a.startsWith("--only="))?.slice(7).split(",");
  const unknown = only?.filter((n) => !SCENARIOS.some((s) => s.name === n)) ?? [];
  if (unknown.length) {
    console.error(`unknown scenario(s): ${unknown.join(", ")}`);
    console.error(`known: ${SCENARIOS.map((s) => s.name).join(", ")}`);
    Deno.exit(2);
  }
  return { quick: args.includes("--quick"), only };
}

function table(results: Result[]): string {
  const rows = [
    ["test", "load", "faults injected", "violations", "time"],
    ...results.map((r) => [
      r.test,
      r.load,
      r.faults,
      String(r.violations.length),
      r.seconds === undefined ? "" : `${r.seconds.toFixed(0)} s`,
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [
    line(rows[0]),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...rows.slice(1).map(line),
  ].join("\n");
}

if (import.meta.main) {
  const { quick, only } = parseArgs(Deno.args);
  const started = performance.now();
  const log = (m: string) =>
    console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${m}`);
  const dir = `${Deno.cwd()}/.data/stress-${Deno.pid}`;
  log(`starting PostgreSQL in ${dir}`);
  const cluster = await startCluster(dir, freePort());
  let dbSeq = 0;
  const ctx: Ctx = {
    cluster,
    quick,
    log,
    database: (prefix) => cluster.createDatabase(`stress_${prefix}_${++dbSeq}`),
  };
  const results: Result[] = [];
  try {
    for (const scenario of SCENARIOS.filter((s) => !only || only.includes(s.name))) {
      log(`— ${scenario.name}`);
      const t0 = performance.now();
      let result: Result;
      try {
        result = await scenario.run(ctx);
      } catch (e) {
        result = {
          test: scenario.name,
          load: "(did not finish)",
          faults: "",
          violations: [`the scenario failed: ${(e as Error).stack ?? e}`],
          notes: [],
        };
      }
      result.seconds = (performance.now() - t0) / 1000;
      results.push(result);
      log(`  ${scenario.name}: ${result.violations.length} violation(s)`);
    }
  } finally {
    await cluster.destroy();
  }

  console.log(`\n${table(results)}\n`);
  for (const r of results) {
    if (r.notes.length) console.log(`${r.test}:\n${r.notes.map((n) => `  - ${n}`).join("\n")}`);
    if (r.violations.length) {
      console.log(`${r.test} VIOLATIONS:`);
      for (const v of r.violations.slice(0, 25)) console.log(`  ! ${v}`);
      if (r.violations.length > 25) console.log(`  ! ... and ${r.violations.length - 25} more`);
    }
  }
  const total = results.reduce((n, r) => n + r.violations.length, 0);
  console.log(
    `\n${total === 0 ? "all invariants held" : `${total} violation(s)`} — ` +
      `${((performance.now() - started) / 1000).toFixed(0)} s in all`,
  );
  Deno.exit(total === 0 ? 0 : 1);
}
