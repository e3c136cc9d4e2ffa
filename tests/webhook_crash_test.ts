/**
 * `kill -9` of the server during a burst of annotations loses no webhook event: the event is
 * written in the transaction of the annotation it reports, so every annotation that committed has
 * its event, and a server started afterwards delivers each at least once (those whose send the
 * crash cut off, once their lease ends). Real processes (testkit/process.ts) and a real receiver
 * on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { adminToken, call, createUser } from "../testkit/api.ts";
import {
  dbEnv,
  exitWithin,
  killHard,
  productionEnv,
  type ServerProcess,
  startServer,
} from "../testkit/process.ts";
import { sleep } from "../testkit/time.ts";
import { startReceiver } from "../testkit/webhook_receiver.ts";
import { LEASE_SECONDS } from "../lib/webhooks/worker.ts";
import { createTestDb, rawMany } from "./harness.ts";

Deno.test("kill -9 during a burst of annotations: every committed annotation's event is delivered", async () => {
  const tdb = await createTestDb(4);
  // Slow enough that sends are in flight when the server dies.
  const receiver = startReceiver({ respond: () => sleep(20).then(() => 200) });
  const servers: ServerProcess[] = [];
  try {
    const env = {
      ...productionEnv(),
      ...dbEnv(tdb.url),
      WEBHOOK_ALLOW_PRIVATE_TARGETS: "true",
      WEBHOOK_RETRY_SCHEDULE: Array(20).fill("0.2").join(","),
    };
    const first = await startServer(env);
    servers.push(first);
    const admin = await adminToken(first);
    const ds = await call(first.url, admin, "POST", "/api/v1/datasets", {
      name: "crash",
      labels: ["cat"],
      access: "open",
    });
    const datasetId = ds.body.id;
    const reg = await call(first.url, admin, "POST", `/api/v1/datasets/${datasetId}/images`, {
      images: Array.from({ length: 2000 }, (_, i) => ({ uri: `s3://b/crash/${i}.jpg` })),
    });
    assert.equal(reg.status, 200);
    const hook = await call(first.url, admin, "POST", "/api/v1/webhooks", {
      url: receiver.url,
      events: ["annotation.created"],
    });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
    const machine = await createUser(first.url, admin, "crash-model", "machine");
    const annotators = await Promise.all(
      [0, 1, 2, 3].map((i) => createUser(first.url, admin, `crash-annotator-${i}`, "annotator")),
    );
    const images: string[] = reg.body.images.map((i: { id: string }) => i.id);

    // The burst: four annotators claiming and submitting, four machine loops predicting, until
    // the server dies under them.
    let dead = false;
    const human = async (token: string) => {
      while (!dead) {
        const c = await call(first.url, token, "POST", `/api/v1/datasets/${datasetId}/claims`);
        if (c.status !== 201 && c.status !== 200) continue;
        await call(
          first.url,
          token,
          "POST",
          `/api/v1/images/${c.body.claim.image_id}/annotations`,
          {
            claim_id: c.body.claim.id,
            labels: ["cat"],
          },
        );
      }
    };
    const predict = async (n: number) => {
      for (let i = n; !dead; i += 4) {
        await call(
          first.url,
          machine.token,
          "POST",
          `/api/v1/images/${images[i % 2000]}/annotations`,
          {
            model: { name: "m", version: "1" },
            labels: ["cat"],
          },
        );
      }
    };
    const loops = [...annotators.map((u) => human(u.token)), ...[0, 1, 2, 3].map(predict)];
    await receiver.waitFor((r) => r.length >= 100, 20_000);
    await killHard(first);
    dead = true;
    await Promise.all(loops);

    const committed = (await rawMany<{ id: string }>(tdb.db, "SELECT id::text FROM annotations"))
      .map((r) => r.id);
    assert.ok(committed.length >= 100, `${committed.length} annotations committed`);
    const delivered = () => new Set(receiver.received.map((r) => r.json.data.annotation.id));
    const missingBefore = committed.filter((id) => !delivered().has(id)).length;

    // A new server delivers the rest; those leased when the first died after their lease.
    servers.push(await startServer(env));
    await receiver.waitFor(
      () => committed.every((id) => delivered().has(id)),
      (LEASE_SECONDS + 15) * 1000,
    );
    // A commit the dead server had sent may still land after the kill (its backend reads the
    // commit before it notices the client is gone): the database at the end is what counts.
    const final = (await rawMany<{ id: string }>(tdb.db, "SELECT id::text FROM annotations"))
      .map((r) => r.id);
    await receiver.waitFor(() => final.every((id) => delivered().has(id)), 10_000);
    // Nothing but committed annotations was reported.
    const known = new Set(final);
    for (const id of delivered()) assert.ok(known.has(id), `event for annotation ${id}`);
    assert.ok(missingBefore > 0, "the crash left events undelivered (else it proved nothing)");
  } finally {
    for (const s of servers) await killHard(s);
    await receiver.close();
    await tdb.close();
  }
});

Deno.test("a graceful shutdown cuts off a send it cannot finish, and the next server sends it again", async () => {
  const tdb = await createTestDb(4);
  // The first attempt of each event hangs past the shutdown; later ones are answered. Real time:
  // the server processes and the receiver only share the wall clock.
  const receiver = startReceiver({
    respond: (_r, n) => n === 1 ? sleep(6_000).then(() => 200) : 200,
  });
  const servers: ServerProcess[] = [];
  try {
    const env = {
      ...productionEnv(),
      ...dbEnv(tdb.url),
      WEBHOOK_ALLOW_PRIVATE_TARGETS: "true",
      SHUTDOWN_TIMEOUT_SECONDS: "2",
    };
    const first = await startServer(env);
    servers.push(first);
    const admin = await adminToken(first);
    const hook = await call(first.url, admin, "POST", "/api/v1/webhooks", {
      url: receiver.url,
      events: ["annotation.created"],
    });
    const ping = await call(
      first.url,
      admin,
      "POST",
      `/api/v1/webhooks/${hook.body.webhook.id}/ping`,
    );
    assert.equal(ping.status, 202);
    await receiver.waitFor((r) => r.length === 1);
    const t0 = performance.now();
    first.kill("SIGTERM");
    assert.equal(await exitWithin(first, 10_000), 0, "no request was cut off");
    assert.ok(performance.now() - t0 < 5_000, "the send was cut off at the shutdown's timeout");
    const [attempt] = await rawMany<{ outcome: string; error: string }>(
      tdb.db,
      "SELECT outcome, error FROM webhook_attempts",
    );
    assert.equal(attempt.outcome, "retrying");
    assert.match(attempt.error, /interrupted/);
    servers.push(await startServer(env));
    await receiver.waitFor((r) => r.length === 2);
    assert.equal(receiver.received[1].id, ping.body.event_id);
  } finally {
    for (const s of servers) await killHard(s);
    await receiver.close().catch(() => {});
    await tdb.close();
  }
});
