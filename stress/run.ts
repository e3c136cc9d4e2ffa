/**
 * `deno task stress [--quick] [--only=name,name]`: attacks the service as it runs in production
 * (real `main.ts` processes, a real PostgreSQL of its own) and prints a summary table: test, load,
 * faults injected, violations found. Exits 1 when anything was violated, or when a full run took
 * longer than its bound (issue 7: under 10 minutes).
 *
 *   claims     no double claims: 64 annotators on 2 servers, ≥ 20,000 claims, short leases
 *   crash      no acknowledged write lost: kill -9 of the server under full write load, repeated
 *   db         PostgreSQL stopped and crashed under load: 503s, no hangs, back within 5 s
 *   fuzz       bad input generated from /api/openapi.json (≥ 5,000 requests)
 *   auth       forged, expired, foreign and escalating credentials against the real server
 *   limits     slow clients, oversized bodies, 1,000 concurrent connections
 *   webhooks   every committed change's event delivered, signed, never twice at once, through a
 *              kill -9, a receiver down for a while and one answering 500s
 *   review     no image reviewed twice, no accepted annotation lost, every rejected image
 *              re-annotated: annotators and reviewers on 2 servers, a kill -9
 *
 * `--quick` shrinks every load but keeps every scenario (CI runs it): 2 × kill -9, both PostgreSQL
 * faults, 1,000 fuzzed requests, the whole auth battery, the 1,000-connection burst and every kind
 * of slow client. `FUZZ_SEED=<n>` replays a fuzz run.
 */
import { freePort } from "../lib/runtime/embedded_pg.ts";
import { startCluster } from "../testkit/postgres.ts";
import type { Ctx, Result, Scenario } from "./lib/scenario.ts";
import { authScenario } from "./scenarios/auth.ts";
import { claimsScenario } from "./scenarios/claims.ts";
import { crashScenario } from "./scenarios/crash.ts";
import { dbRestartScenario } from "./scenarios/db_restart.ts";
import { fuzzScenario } from "./scenarios/fuzz.ts";
import { limitsScenario } from "./scenarios/limits.ts";
import { reviewScenario } from "./scenarios/review.ts";
import { webhooksScenario } from "./scenarios/webhooks.ts";

const SCENARIOS: Scenario[] = [
  claimsScenario,
  crashScenario,
  dbRestartScenario,
  fuzzScenario,
  authScenario,
  limitsScenario,
  webhooksScenario,
  reviewScenario,
];

/** The longest a run may take, in seconds: a full run (issue 7), and a `--quick` one (CI). */
export const TIME_LIMIT_S = { full: 600, quick: 420 };

const USAGE = `usage: deno task stress [--quick] [--only=name[,name...]]

  --quick        smaller loads, every scenario (the CI smoke run); bound ${TIME_LIMIT_S.quick} s
  --only=names   run only these scenarios: ${SCENARIOS.map((s) => s.name).join(", ")}
  --help         this text

A full run must finish within ${TIME_LIMIT_S.full} s. Exit code: 0 when every invariant held in
time, 1 on any violation or when the run took too long, 2 for bad arguments.
FUZZ_SEED=<n> replays the fuzzer's run with that seed (the fuzz scenario prints it).`;

function parseArgs(args: string[]) {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const bad = args.filter((a) => a !== "--quick" && !a.startsWith("--only="));
  if (bad.length) {
    console.error(`unknown argument(s): ${bad.join(" ")}\n\n${USAGE}`);
    Deno.exit(2);
  }
  const only = args.find((a) => a.startsWith("--only="))?.slice(7).split(",");
  const unknown = only?.filter((n) => !SCENARIOS.some((s) => s.name === n)) ?? [];
  if (unknown.length) {
    console.error(`unknown scenario(s): ${unknown.join(", ")}`);
    console.error(`known: ${SCENARIOS.map((s) => s.name).join(", ")}`);
    Deno.exit(2);
  }
  return { quick: args.includes("--quick"), only };
}

/**
 * The run's outcome: exit code 0 only when nothing was violated and the run kept to its time
 * bound; the last lines say which.
 */
export function verdict(
  results: Pick<Result, "violations">[],
  seconds: number,
  quick: boolean,
): { code: number; lines: string[] } {
  const total = results.reduce((n, r) => n + r.violations.length, 0);
  const limit = quick ? TIME_LIMIT_S.quick : TIME_LIMIT_S.full;
  const lines = [
    `${total === 0 ? "all invariants held" : `${total} violation(s)`} — ` +
    `${seconds.toFixed(0)} s in all`,
  ];
  const late = seconds > limit;
  if (late) {
    lines.push(
      `FAILED: the ${quick ? "quick" : "full"} run took ${seconds.toFixed(0)} s, over its ` +
        `${limit} s bound`,
    );
  }
  return { code: total === 0 && !late ? 0 : 1, lines };
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
  const outcome = verdict(results, (performance.now() - started) / 1000, quick);
  console.log(`\n${outcome.lines.join("\n")}`);
  Deno.exit(outcome.code);
}
