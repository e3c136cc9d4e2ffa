/**
 * PostgreSQL goes away under load and comes back: first a clean fast shutdown, then an immediate
 * one (crash recovery on start). The server must answer 503 with the error shape while the
 * database is down (not hang, not 500, not die), answer again within 5 s of it being back without
 * a restart of its own, and every acknowledged write must survive.
 */
import { adminToken, call, createUsers } from "../../testkit/api.ts";
import { sleep } from "../../testkit/time.ts";
import { annotatorLoop, auditLedger, machineLoop, newLedger } from "../lib/load.ts";
import {
  auditWrites,
  type Ctx,
  fmt,
  type Result,
  type Scenario,
  seedDataset,
  snapshotInvariants,
  sqlFor,
} from "../lib/scenario.ts";
import { killHard, startLoadServer } from "../../testkit/process.ts";

const RECOVERY_LIMIT_MS = 5000;
const HANG_MS = 10_000;

export const dbRestartScenario: Scenario = {
  name: "db",
  async run(ctx: Ctx): Promise<Result> {
    const url = await ctx.database("db");
    const server = await startLoadServer({ databaseUrl: url });
    const violations: string[] = [];
    const notes: string[] = [];
    const annotators = ctx.quick ? 8 : 16;
    const outages: { kind: "stop" | "crash"; downMs: number }[] = ctx.quick
      ? [{ kind: "stop", downMs: 2000 }, { kind: "crash", downMs: 2000 }]
      : [
        { kind: "stop", downMs: 4000 },
        { kind: "crash", downMs: 3000 },
        { kind: "stop", downMs: 1000 },
        { kind: "crash", downMs: 5000 },
      ];
    try {
      const admin = await adminToken(server.url);
      const ds = await seedDataset(server.url, admin, { name: "db", count: 20_000 });
      const users = await createUsers(server.url, admin, "db-a", "annotator", annotators);
      const machines = await createUsers(server.url, admin, "db-m", "machine", 2);
      const ledger = newLedger();
      const stop = { now: false };
      const opts = { bases: [server.url], stop, ledger, timeoutMs: HANG_MS + 5000 };
      const workers = [
        ...users.map((u) => annotatorLoop(u, ds.id, opts)),
        ...machines.map((m) => machineLoop(m, ds.id, ds.images, 50, opts)),
      ];

      // A prober on a route that needs the database, and on readiness, every 100 ms.
      const probes: { at: number; status: number; ms: number; path: string }[] = [];
      const probe = (async () => {
        while (!stop.now) {
          for (const path of [`/api/v1/datasets/${ds.id}/stats`, "/readyz"]) {
            const res = await call(server.url, admin, "GET", path, undefined, {
              timeoutMs: HANG_MS + 5000,
            });
            probes.push({ at: performance.now(), status: res.status, ms: res.ms, path });
          }
          await sleep(100);
        }
      })();

      await sleep(3000);
      for (const outage of outages) {
        const before = ledger.answers.length;
        const downAt = performance.now();
        if (outage.kind === "stop") await ctx.cluster.stop();
        else await ctx.cluster.crash();
        ctx.log(`  PostgreSQL ${outage.kind === "stop" ? "stopped" : "crashed"}`);
        await sleep(outage.downMs);
        const downProbes = probes.filter((p) => p.at > downAt + 200);
        const statuses = new Set(
          downProbes.map((p) => `${p.path.includes("stats") ? "stats" : "readyz"} ${p.status}`),
        );
        await ctx.cluster.start();
        const upAt = performance.now();
        ctx.log(`  PostgreSQL back (${outage.kind})`);
        // Wait for the first 200 of the database-backed probe.
        let recovered: number | undefined;
        while (performance.now() - upAt < 15_000) {
          const ok = probes.find((p) =>
            p.at > upAt && p.status === 200 && p.path.includes("stats")
          );
          if (ok) {
            recovered = ok.at - upAt;
            break;
          }
          await sleep(50);
        }
        const during = ledger.answers.slice(before).filter(([at]) => at + 0 > 0);
        const unavailable = during.filter(([, s]) => s === 503).length;
        notes.push(
          `${outage.kind} for ${outage.downMs} ms: probes while down answered ${
            [...statuses].sort().join(", ") || "nothing"
          }; ` +
            `${fmt(unavailable)} writer requests got 503; first 200 ${
              recovered === undefined ? "never" : `${Math.round(recovered)} ms`
            } after PostgreSQL was back`,
        );
        if (recovered === undefined || recovered > RECOVERY_LIMIT_MS) {
          violations.push(
            `after the ${outage.kind}, the service did not answer 200 within ${RECOVERY_LIMIT_MS} ms ` +
              `(${recovered === undefined ? "not within 15 s" : `${Math.round(recovered)} ms`})`,
          );
        }
        for (const p of downProbes) {
          if (p.status !== 503 && !(p.status === 200 && p.at > upAt)) {
            if (p.at < upAt - 300) {
              violations.push(`${p.path} answered ${p.status} while PostgreSQL was down`);
            }
          }
        }
        await sleep(3000);
      }
      stop.now = true;
      await Promise.all([...workers, probe]);

      for (const [, status, ms, op] of ledger.answers) {
        if (ms > HANG_MS) {
          violations.push(`${op} took ${Math.round(ms)} ms (status ${status}): a hang`);
        }
        if (status === 0) {
          violations.push(`${op}: no answer from the server (it dropped the connection)`);
        }
      }
      for (const p of probes) {
        if (p.ms > HANG_MS) violations.push(`probe ${p.path} took ${Math.round(p.ms)} ms`);
        if (p.status === 0 || (p.status >= 500 && p.status !== 503)) {
          violations.push(`probe ${p.path} answered ${p.status}`);
        }
      }
      violations.push(...ledger.bad);
      const exited = await Promise.race([
        server.exited.then(() => true),
        sleep(10).then(() => false),
      ]);
      if (exited) violations.push("the server process exited during the outages");

      const sql = sqlFor(url);
      try {
        violations.push(...await auditLedger(sql, ledger));
        violations.push(...await auditWrites(sql));
        violations.push(...await snapshotInvariants(sql));
      } finally {
        await sql.end();
      }
      const logged = new Map<string, number>();
      for (const e of server.logs("error")) {
        const key = String(e.error ?? e.msg).split("\n").slice(0, 2).join(" / ").slice(0, 200);
        logged.set(key, (logged.get(key) ?? 0) + 1);
      }
      for (const [k, n] of logged) notes.push(`server logged ×${n}: ${k}`);
      const warned = new Map<string, number>();
      for (const w of server.logs("warn")) {
        const key = `${w.msg}${w.code ? ` (${w.code})` : ""}`;
        warned.set(key, (warned.get(key) ?? 0) + 1);
      }
      for (const [k, n] of warned) notes.push(`server warned ×${n}: ${k}`);
      const byStatus: Record<number, number> = {};
      for (const [, s] of ledger.answers) byStatus[s] = (byStatus[s] ?? 0) + 1;
      notes.push(`writer answers by status: ${JSON.stringify(byStatus)}`);
      const acked = [...ledger.submits.values()].filter((s) => s.statuses.includes(201)).length;
      return {
        test: "3. database restart",
        load:
          `${annotators} annotators + 2 ML clients, 1 server; ${
            fmt(ledger.answers.length)
          } requests, ` +
          `${fmt(acked)} annotations acknowledged`,
        faults: outages.map((o) =>
          `${o.kind === "stop" ? "stop" : "kill (immediate)"} ${o.downMs / 1000} s`
        )
          .join(", ") + " of PostgreSQL",
        violations: dedupe(violations),
        notes,
      };
    } finally {
      await killHard(server);
    }
  },
};

/** Collapses repeats ("x" ×12). */
export function dedupe(lines: string[]): string[] {
  const counts = new Map<string, number>();
  for (const l of lines) counts.set(l, (counts.get(l) ?? 0) + 1);
  return [...counts].map(([l, n]) => (n > 1 ? `${l} (×${n})` : l));
}
