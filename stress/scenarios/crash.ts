/**
 * No acknowledged write lost: annotators submit and ML clients post prediction batches at full
 * speed while the server is killed with SIGKILL and started again on the same port, several times.
 * Afterwards every annotation that got a 201 is in the database, every batch that got a 200 has all
 * its rows, nothing refused was written, and nothing is half-written (a submit either completed its
 * claim and annotated the image, or did neither; a batch has all its rows or none).
 */
import { adminToken, createUsers } from "../../testkit/api.ts";
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
import { killHard, type ServerProcess, startLoadServer } from "../../testkit/process.ts";
import { dedupe } from "./db_restart.ts";

export const crashScenario: Scenario = {
  name: "crash",
  async run(ctx: Ctx): Promise<Result> {
    const kills = ctx.quick ? 2 : 6;
    const annotators = ctx.quick ? 12 : 32;
    const url = await ctx.database("crash");
    let server: ServerProcess = await startLoadServer({ databaseUrl: url });
    const port = server.port;
    const violations: string[] = [];
    const restartMs: number[] = [];
    try {
      const admin = await adminToken(server.url);
      const ds = await seedDataset(server.url, admin, { name: "crash", count: 30_000 });
      const users = await createUsers(server.url, admin, "crash-a", "annotator", annotators);
      const machines = await createUsers(server.url, admin, "crash-m", "machine", 4);
      const ledger = newLedger();
      const stop = { now: false };
      const opts = { bases: [server.url], stop, ledger, timeoutMs: 20_000 };
      const workers = [
        ...users.map((u) => annotatorLoop(u, ds.id, opts)),
        ...machines.map((m) => machineLoop(m, ds.id, ds.images, 100, opts)),
      ];
      for (let i = 0; i < kills; i++) {
        await sleep(1500 + Math.random() * 2000);
        const before = ledger.answers.length;
        await killHard(server);
        ctx.log(`  kill -9 #${i + 1} (${fmt(before)} answers so far)`);
        const t0 = performance.now();
        server = await startLoadServer({ databaseUrl: url, port });
        restartMs.push(performance.now() - t0);
      }
      await sleep(2000);
      stop.now = true;
      await Promise.all(workers);

      violations.push(...ledger.bad);
      const sql = sqlFor(url);
      try {
        violations.push(...await auditLedger(sql, ledger));
        violations.push(...await auditWrites(sql));
        violations.push(...await snapshotInvariants(sql));
      } finally {
        await sql.end();
      }
      const acked = [...ledger.submits.values()].filter((s) => s.statuses.includes(201)).length;
      const unanswered = ledger.answers.filter(([, s]) => s === 0).length;
      const retried = [...ledger.submits.values()].filter((s) => s.statuses.length > 1).length;
      const completedOnRetry = [...ledger.submits.values()].filter((s) =>
        s.codes.includes("claim_completed")
      ).length;
      const batches = ledger.batches.filter((b) => b.status === 200).length;
      return {
        test: "2. no acknowledged write lost",
        load: `${annotators} annotators + 4 ML clients, 1 server; ${fmt(acked)} annotations and ` +
          `${fmt(batches)} prediction batches acknowledged`,
        faults: `${kills} × kill -9 of the server (${fmt(unanswered)} requests cut off)`,
        violations: dedupe(violations),
        notes: [
          `restarts took ${restartMs.map((ms) => `${Math.round(ms)} ms`).join(", ")}`,
          `${fmt(retried)} submits were retried after no answer; ${completedOnRetry} of them had ` +
          `committed before the kill (the retry answered claim_completed, and the annotation is there)`,
        ],
      };
    } finally {
      await killHard(server);
    }
  },
};
