/**
 * Every committed change's webhook event delivered, signed, never sent twice at once: annotators
 * and an ML client write at full speed through two servers (sharing the delivery work) while one
 * server is killed with SIGKILL and started again. Three receivers on 127.0.0.1: one healthy, one
 * that answers 500 to every first attempt of a third of the events, one that is down for the first
 * half of the run. Afterwards, within a bounded wait, each receiver must have had every committed
 * annotation's annotation.created and every completed image's image.completed, each verified with
 * the npm `standardwebhooks` package, none for a change that is not in the database, and no event
 * id in flight twice at once at one receiver. Loopback only, bounded in time and count.
 */
import { Webhook } from "standardwebhooks";
import { adminToken, call, createUsers, expectStatus } from "../../testkit/api.ts";
import { killHard, type ServerProcess, startLoadServer } from "../../testkit/process.ts";
import { sleep } from "../../testkit/time.ts";
import { type Receiver, startReceiver } from "../../testkit/webhook_receiver.ts";
import { annotatorLoop, machineLoop, newLedger } from "../lib/load.ts";
import { type Ctx, fmt, type Result, type Scenario, seedDataset, sqlFor } from "../lib/scenario.ts";
import { dedupe } from "./db_restart.ts";

const ENV = {
  WEBHOOK_ALLOW_PRIVATE_TARGETS: "true",
  // Retries every second for 100 s: the down receiver's events wait for it.
  WEBHOOK_RETRY_SCHEDULE: Array(100).fill("1").join(","),
};

export const webhooksScenario: Scenario = {
  name: "webhooks",
  async run(ctx: Ctx): Promise<Result> {
    const seconds = ctx.quick ? 8 : 20;
    const annotators = ctx.quick ? 8 : 16;
    const url = await ctx.database("webhooks");
    const servers: ServerProcess[] = await Promise.all([
      startLoadServer({ databaseUrl: url, env: ENV }),
      startLoadServer({ databaseUrl: url, env: ENV }),
    ]);
    const healthy = startReceiver();
    const flaky = startReceiver({
      respond: (r, n) => n === 1 && Number(r.id.slice(4)) % 3 === 0 ? 500 : 200,
    });
    // A port with nothing on it for the first half.
    const probe = startReceiver();
    const downPort = probe.port;
    await probe.close();
    let down: Receiver | undefined;
    const violations: string[] = [];
    const notes: string[] = [];
    try {
      const base = servers[0].url;
      const admin = await adminToken(base);
      const ds = await seedDataset(base, admin, { name: "webhooks", count: 20_000 });
      const hooks: { receiver: () => Receiver | undefined; secret: string; name: string }[] = [];
      const events = ["annotation.created", "image.completed", "dataset.completed"];
      for (
        const [name, target, receiver] of [
          ["healthy", healthy.url, () => healthy],
          ["flaky", flaky.url, () => flaky],
          ["down for a while", `http://127.0.0.1:${downPort}/hook`, () => down],
        ] as const
      ) {
        const res = expectStatus(
          await call(base, admin, "POST", "/api/v1/webhooks", { url: target, events }),
          201,
        );
        hooks.push({ receiver, secret: res.body.secret, name });
      }
      const users = await createUsers(base, admin, "hook-a", "annotator", annotators);
      const [machine] = await createUsers(base, admin, "hook-m", "machine", 1);
      const ledger = newLedger();
      const stop = { now: false };
      const bases = servers.map((s) => s.url);
      const opts = { bases, stop, ledger, timeoutMs: 20_000 };
      const loops = [
        ...users.map((u) => annotatorLoop(u, ds.id, opts)),
        machineLoop(machine, ds.id, ds.images, 50, opts),
      ];
      await sleep((seconds / 2) * 1000);
      const port = servers[1].port;
      await killHard(servers[1]);
      servers[1] = await startLoadServer({ databaseUrl: url, env: ENV, port });
      down = startReceiver({ port: downPort });
      await sleep((seconds / 2) * 1000);
      stop.now = true;
      await Promise.all(loops);

      const sql = sqlFor(url);
      let annotations: Set<string>;
      let completed: Set<string>;
      try {
        annotations = new Set(
          (await sql<{ id: string }[]>`SELECT id::text FROM annotations`).map((r) => r.id),
        );
        completed = new Set(
          (await sql<{ id: string }[]>`SELECT id::text FROM images WHERE done`).map((r) => r.id),
        );
      } finally {
        await sql.end();
      }
      const waitS = ctx.quick ? 60 : 90;
      const started = performance.now();
      for (const hook of hooks) {
        const receiver = hook.receiver()!;
        const seen = () => {
          const a = new Set<string>();
          const i = new Set<string>();
          for (const r of receiver.received) {
            if (r.json.type === "annotation.created") a.add(r.json.data.annotation.id);
            if (r.json.type === "image.completed") i.add(r.json.data.image.id);
          }
          return { a, i };
        };
        const missing = () => {
          const { a, i } = seen();
          return [...annotations].filter((id) => !a.has(id)).length +
            [...completed].filter((id) => !i.has(id)).length;
        };
        const left = waitS * 1000 - (performance.now() - started);
        await receiver.waitFor(() => missing() === 0, Math.max(left, 1000)).catch(() => {});
        if (missing()) {
          violations.push(`${hook.name}: ${fmt(missing())} events not delivered within ${waitS} s`);
        }
        const verifier = new Webhook(hook.secret);
        let forged = 0;
        for (const r of receiver.received) {
          try {
            verifier.verify(r.body, {
              "webhook-id": r.id,
              "webhook-timestamp": r.timestamp,
              "webhook-signature": r.signature,
            });
          } catch {
            forged++;
          }
        }
        if (forged) violations.push(`${hook.name}: ${forged} requests failed verification`);
        const { a, i } = seen();
        for (const id of a) {
          if (!annotations.has(id)) violations.push(`${hook.name}: event for annotation ${id}`);
        }
        for (const id of i) {
          if (!completed.has(id)) violations.push(`${hook.name}: image.completed for image ${id}`);
        }
        if (receiver.overlaps) {
          violations.push(`${hook.name}: ${receiver.overlaps} event ids sent twice at once`);
        }
        const ids = receiver.received.map((r) => r.id);
        notes.push(
          `${hook.name}: ${fmt(new Set(ids).size)} events in ${fmt(ids.length)} requests`,
        );
      }
      const lag = healthy.received.map((r) => r.at - Date.parse(r.json.timestamp)).sort((x, y) =>
        x - y
      );
      if (lag.length) {
        notes.push(
          `healthy receiver: event to arrival p50 ${lag[Math.floor(lag.length / 2)]} ms, ` +
            `p99 ${lag[Math.floor(lag.length * 0.99)]} ms`,
        );
      }
      return {
        test: "webhooks: every event delivered",
        load: `${annotators} annotators + 1 ML client, 2 servers, 3 webhooks; ` +
          `${fmt(annotations.size)} annotations`,
        faults: "kill -9 of a server; a receiver down half the run; 500s",
        violations: dedupe(violations),
        notes,
      };
    } finally {
      for (const s of servers) await killHard(s);
      await healthy.close();
      await flaky.close();
      await down?.close();
    }
  },
};
