/**
 * Webhook delivery, end to end in one process: the app writes events with the changes they
 * report, a real delivery worker (lib/webhooks/worker.ts) sends them to real HTTP receivers on
 * 127.0.0.1, and signatures are checked with the npm `standardwebhooks` package (an independent
 * implementation). Retries use a short WEBHOOK_RETRY_SCHEDULE.
 */
import assert from "node:assert/strict";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Metrics } from "../lib/runtime/metrics.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import {
  LEASE_SECONDS,
  PER_WEBHOOK,
  startWebhookWorker,
  type WebhookWorker,
  type WorkerOptions,
} from "../lib/webhooks/worker.ts";
import { targetResolve } from "../lib/webhooks/targets.ts";
import { ANSWER_LIMIT, createSender } from "../lib/webhooks/send.ts";
import { hasOpenssl, selfSigned } from "../testkit/certs.ts";
import { type Received, startReceiver } from "../testkit/webhook_receiver.ts";
import { sleep } from "../testkit/time.ts";
import {
  assertError,
  createTestApp,
  rawOne,
  setClaimExpiry,
  type TestApp,
  testConfig,
  type TestUser,
} from "./harness.ts";

const ENV = { WEBHOOK_ALLOW_PRIVATE_TARGETS: "true", WEBHOOK_RETRY_SCHEDULE: "0.2,0.2" };

interface Setup {
  h: TestApp;
  metrics: Metrics;
  worker(env?: Record<string, string>, opts?: Partial<WorkerOptions>): WebhookWorker;
  stop(): Promise<void>;
}

/** An app and a way to start workers on its database; `stop` ends them and the database. */
async function setup(env: Record<string, string> = {}): Promise<Setup> {
  const h = await createTestApp({ config: { ...ENV, ...env } });
  const metrics = new Metrics();
  const workers: WebhookWorker[] = [];
  return {
    h,
    metrics,
    worker(more = {}, opts = {}) {
      const w = startWebhookWorker({
        db: h.db,
        config: testConfig({ ...ENV, ...env, ...more }),
        log: silentLogger,
        metrics,
        pollMs: 20,
        statsMs: 100,
        ...opts,
      });
      workers.push(w);
      return w;
    },
    async stop() {
      await Promise.all(workers.map((w) => w.stop(0)));
      await h.close();
    },
  };
}

let seq = 0;

async function dataset(h: TestApp, images: number, k = 1): Promise<string> {
  const ds = await h.req("POST", "/api/v1/datasets", {
    name: `hooks-${++seq}`,
    labels: ["cat", "dog"],
    annotations_per_image: k,
    access: "open",
  });
  const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
    images: Array.from({ length: images }, (_, i) => ({
      uri: `s3://b/${seq}/${i}.jpg`,
      external_id: `x${i}`,
    })),
  });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  return ds.body.id;
}

async function webhook(
  h: TestApp,
  url: string,
  events: string[],
  datasetId?: string,
): Promise<{ id: string; secret: string }> {
  const res = await h.req("POST", "/api/v1/webhooks", {
    url,
    events,
    ...(datasetId ? { dataset_id: datasetId } : {}),
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return { id: res.body.webhook.id, secret: res.body.secret };
}

/** Claims the next image and submits a label: the annotation, or null when none was left. */
async function annotate(u: TestUser, datasetId: string) {
  const c = await u.req("POST", `/api/v1/datasets/${datasetId}/claims`);
  if (c.status === 204) return null;
  assert.equal(c.status, 201, JSON.stringify(c.body));
  const a = await u.req("POST", `/api/v1/images/${c.body.claim.image_id}/annotations`, {
    claim_id: c.body.claim.id,
    labels: ["cat"],
  });
  assert.equal(a.status, 201, JSON.stringify(a.body));
  return a.body;
}

/** The event, after checking its signature with the standardwebhooks package. */
function verified(secret: string, r: Received) {
  return new StandardWebhook(secret).verify(r.body, {
    "webhook-id": r.id,
    "webhook-timestamp": r.timestamp,
    "webhook-signature": r.signature,
  }) as { type: string; timestamp: string; data: Record<string, unknown> };
}

const deliveryRows = async (h: TestApp) =>
  (await rawOne<{ n: number }>(h.db, "SELECT count(*)::int AS n FROM webhook_deliveries"))!.n;

Deno.test("annotation.created reaches the receiver signed, as the standardwebhooks package verifies", async () => {
  const s = await setup();
  const receiver = startReceiver();
  try {
    const { h } = s;
    const ann = await h.user("annotator");
    const ds = await dataset(h, 2);
    const hook = await webhook(h, receiver.url, ["annotation.created"]);
    s.worker();
    const created = await annotate(ann, ds);
    await receiver.waitFor((r) => r.length === 1);
    const r = receiver.received[0];
    const event = verified(hook.secret, r);
    assert.match(r.id, /^evt_\d+$/);
    assert.ok(Math.abs(Number(r.timestamp) - Date.now() / 1000) < 60, "the attempt's time");
    assert.equal(r.headers.get("content-type"), "application/json");
    assert.equal(event.type, "annotation.created");
    assert.equal(event.timestamp, created.created_at);
    assert.deepEqual(event.data.annotation, created);
    const image = event.data.image as Record<string, string>;
    assert.equal(image.id, created.image_id);
    assert.equal(image.dataset_id, ds);
    assert.match(image.uri, /^s3:\/\/b\//);
    assert.match(image.external_id, /^x\d$/);
    // A wrong secret does not verify.
    assert.throws(() => verified("whsec_" + btoa("x".repeat(32)), r));
    // The attempt is logged, delivered.
    await waitForAttempts(h, hook.id, 1);
    const page = await h.req("GET", `/api/v1/webhooks/${hook.id}/deliveries`);
    assert.equal(page.body.items[0].outcome, "delivered");
    assert.equal(page.body.items[0].status_code, 200);
    assert.equal(page.body.items[0].event_id, r.id);
    assert.equal(page.body.items[0].event_type, "annotation.created");
  } finally {
    await receiver.close();
    await s.stop();
  }
});

async function waitForAttempts(h: TestApp, webhookId: string, n: number, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const page = await h.req("GET", `/api/v1/webhooks/${webhookId}/deliveries?limit=1000`);
    if (page.body.items.length >= n) return page.body.items;
    if (Date.now() > deadline) {
      throw new Error(`${page.body.items.length} of ${n} attempts: ${JSON.stringify(page.body)}`);
    }
    await sleep(20);
  }
}

Deno.test("no subscriber, no event: changes for other events or datasets write no outbox row", async () => {
  const s = await setup();
  try {
    const { h } = s;
    const ann = await h.user("annotator");
    const machine = await h.user("machine");
    const ds = await dataset(h, 4);
    const other = await dataset(h, 1);
    await annotate(ann, ds);
    await webhook(h, "http://127.0.0.1:9/unused", ["claim.expired"]);
    await webhook(h, "http://127.0.0.1:9/unused", ["annotation.created"], other);
    const disabled = await webhook(h, "http://127.0.0.1:9/unused", ["annotation.created"]);
    await h.req("PATCH", `/api/v1/webhooks/${disabled.id}`, { enabled: false });
    await annotate(ann, ds);
    const pred = await machine.req("POST", `/api/v1/datasets/${ds}/predictions`, {
      predictions: [{ external_id: "x3", model: { name: "m", version: "1" }, labels: ["dog"] }],
    });
    assert.equal(pred.status, 200);
    assert.equal(await deliveryRows(h), 0);
  } finally {
    await s.stop();
  }
});

Deno.test("a refused change writes no event: the event commits with the change or not at all", async () => {
  const s = await setup();
  try {
    const { h } = s;
    const ann = await h.user("annotator");
    const ds = await dataset(h, 1);
    await webhook(h, "http://127.0.0.1:9/unused", ["annotation.created", "image.completed"]);
    const c = await ann.req("POST", `/api/v1/datasets/${ds}/claims`);
    const bad = await ann.req("POST", `/api/v1/images/${c.body.claim.image_id}/annotations`, {
      claim_id: c.body.claim.id,
      labels: ["unicorn"],
    });
    assert.equal(bad.status, 422);
    assert.equal(await deliveryRows(h), 0);
    const good = await ann.req("POST", `/api/v1/images/${c.body.claim.image_id}/annotations`, {
      claim_id: c.body.claim.id,
      labels: ["cat"],
    });
    assert.equal(good.status, 201);
    assert.equal(await deliveryRows(h), 2, "annotation.created and image.completed");
  } finally {
    await s.stop();
  }
});

Deno.test("a receiver answering 500 twice then 200 gets three attempts with the same webhook-id", async () => {
  const s = await setup();
  const receiver = startReceiver({ respond: (_r, n) => n <= 2 ? 500 : 200 });
  try {
    const { h } = s;
    const ann = await h.user("annotator");
    const ds = await dataset(h, 1);
    const hook = await webhook(h, receiver.url, ["annotation.created"]);
    s.worker();
    await annotate(ann, ds);
    await receiver.waitFor((r) => r.length === 3);
    const ids = new Set(receiver.received.map((r) => r.id));
    assert.equal(ids.size, 1, "one webhook-id on every attempt");
    for (const r of receiver.received) verified(hook.secret, r);
    // Each attempt signs its own time; the body is the same.
    assert.equal(new Set(receiver.received.map((r) => r.body)).size, 1);
    const attempts = (await waitForAttempts(h, hook.id, 3)).reverse();
    assert.deepEqual(attempts.map((a: { status_code: number }) => a.status_code), [500, 500, 200]);
    assert.deepEqual(attempts.map((a: { outcome: string }) => a.outcome), [
      "retrying",
      "retrying",
      "delivered",
    ]);
    assert.deepEqual(attempts.map((a: { attempt: number }) => a.attempt), [1, 2, 3]);
    assert.ok(attempts[0].next_attempt_at && attempts[1].next_attempt_at);
    assert.equal(attempts[2].next_attempt_at, null);
    // The retries waited for the schedule (0.2 s, ±10 %).
    const gaps = [1, 2].map((i) => receiver.received[i].at - receiver.received[i - 1].at);
    assert.ok(gaps.every((g) => g >= 150), `gaps ${gaps}`);
    const webhookRes = await h.req("GET", `/api/v1/webhooks/${hook.id}`);
    assert.equal(webhookRes.body.status, "active");
  } finally {
    await receiver.close();
    await s.stop();
  }
});

Deno.test("after the last retry the webhook is failing; a later delivery clears it; 410 disables it", async () => {
  const s = await setup();
  let status = 503;
  const receiver = startReceiver({ respond: () => status });
  try {
    const { h, metrics } = s;
    const ann = await h.user("annotator");
    const ds = await dataset(h, 3);
    const hook = await webhook(h, receiver.url, ["annotation.created"]);
    s.worker();
    await annotate(ann, ds);
    await receiver.waitFor((r) => r.length === 3);
    const attempts = await waitForAttempts(h, hook.id, 3);
    assert.equal(attempts[0].outcome, "failed");
    assert.equal(attempts[0].next_attempt_at, null);
    let got = await h.req("GET", `/api/v1/webhooks/${hook.id}`);
    assert.equal(got.body.status, "failing");
    assert.ok(got.body.failing_since);
    await sleep(500);
    assert.equal(receiver.received.length, 3, "no attempt after the schedule ran out");

    // Redelivered once the receiver is fixed: delivered, and the webhook is active again.
    status = 200;
    const eventId = receiver.received[0].id;
    const re = await h.req("POST", `/api/v1/webhooks/${hook.id}/events/${eventId}/redeliver`);
    assert.equal(re.status, 202, JSON.stringify(re.body));
    await receiver.waitFor((r) => r.length === 4);
    assert.equal(receiver.received[3].id, eventId);
    await waitForAttempts(h, hook.id, 4);
    got = await h.req("GET", `/api/v1/webhooks/${hook.id}`);
    assert.equal(got.body.status, "active");
    assert.equal(got.body.failing_since, null);

    // 410 Gone: disabled, not retried.
    status = 410;
    await annotate(ann, ds);
    await receiver.waitFor((r) => r.length === 5);
    await waitForAttempts(h, hook.id, 5);
    got = await h.req("GET", `/api/v1/webhooks/${hook.id}`);
    assert.equal(got.body.status, "disabled");
    assert.equal(got.body.disabled_reason, "gone");
    assert.equal(got.body.enabled, false);
    await annotate(ann, ds);
    await sleep(300);
    assert.equal(receiver.received.length, 5, "a disabled webhook is sent nothing");
    assert.equal(await deliveryRows(h), 2, "nor is anything queued for it");
    assert.equal(metrics.webhookDeliveries.get({ outcome: "failed" }), 1);
    assert.equal(metrics.webhookDeliveries.get({ outcome: "retrying" }), 2);
    assert.equal(metrics.webhookDeliveries.get({ outcome: "delivered" }), 1);
    assert.equal(metrics.webhookDeliveries.get({ outcome: "gone" }), 1);
    const text = metrics.render();
    assert.match(text, /^webhook_deliveries_total\{outcome="delivered"\} 1$/m);
    assert.match(text, /^webhook_queue_depth \d+$/m);
    assert.match(text, /^webhook_oldest_undelivered_seconds [\d.]+$/m);
  } finally {
    await receiver.close();
    await s.stop();
  }
});

Deno.test("a receiver down for a while gets every event once it is back", async () => {
  const s = await setup({ WEBHOOK_RETRY_SCHEDULE: "0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3" });
  // A port with nothing listening, then a receiver on it.
  const probe = startReceiver();
  const port = probe.port;
  await probe.close();
  try {
    const { h } = s;
    const ann = await h.user("annotator");
    const ds = await dataset(h, 10);
    const hook = await webhook(h, `http://127.0.0.1:${port}/hook`, ["annotation.created"]);
    s.worker();
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await annotate(ann, ds)).id);
    const failed = await waitForAttempts(h, hook.id, 10);
    assert.ok(failed.every((a: { outcome: string }) => a.outcome === "retrying"));
    assert.match(failed[0].error, /refused|connect/i);
    const receiver = startReceiver({ port });
    try {
      await receiver.waitFor((r) => new Set(r.map((x) => x.json.data.annotation.id)).size === 10);
      const got = new Set(receiver.received.map((r) => r.json.data.annotation.id));
      assert.deepEqual([...got].sort(), [...ids].sort());
      for (const r of receiver.received) verified(hook.secret, r);
    } finally {
      await receiver.close();
    }
  } finally {
    await s.stop();
  }
});

Deno.test("during a rotation both secrets sign; ping sends webhook.ping", async () => {
  const s = await setup();
  const receiver = startReceiver();
  try {
    const { h } = s;
    const hook = await webhook(h, receiver.url, ["annotation.created"]);
    s.worker();
    const rotated = await h.req("POST", `/api/v1/webhooks/${hook.id}/secret`);
    assert.equal(rotated.status, 200);
    assert.notEqual(rotated.body.secret, hook.secret);
    const until = Date.parse(rotated.body.webhook.previous_secret_until);
    assert.ok(Math.abs(until - Date.now() - 24 * 3600_000) < 60_000, "24 h of overlap");
    const ping = await h.req("POST", `/api/v1/webhooks/${hook.id}/ping`);
    assert.equal(ping.status, 202);
    await receiver.waitFor((r) => r.length === 1);
    const r = receiver.received[0];
    assert.equal(r.id, ping.body.event_id);
    assert.equal(r.signature.split(" ").length, 2);
    assert.equal(verified(rotated.body.secret, r).type, "webhook.ping");
    assert.equal(verified(hook.secret, r).type, "webhook.ping");
    assert.deepEqual(r.json.data, { webhook_id: hook.id });
    // Once the overlap is over, only the new secret signs.
    await h.db.unsafe("UPDATE webhooks SET previous_secret_until = now() WHERE id = $1", [
      hook.id,
    ]);
    await h.req("POST", `/api/v1/webhooks/${hook.id}/ping`);
    await receiver.waitFor((r) => r.length === 2);
    verified(rotated.body.secret, receiver.received[1]);
    assert.throws(() => verified(hook.secret, receiver.received[1]));
  } finally {
    await receiver.close();
    await s.stop();
  }
});

Deno.test("one slow receiver does not delay another webhook", async () => {
  const s = await setup();
  // Real time: the receiver is another server answering over a socket, and what is measured is
  // that its silence (longer than the 5 s this test waits) holds up no other webhook's sends.
  const slow = startReceiver({ respond: () => sleep(6_000).then(() => 200) });
  const fast = startReceiver();
  try {
    const { h } = s;
    const ann = await h.user("annotator");
    const ds = await dataset(h, 20);
    await webhook(h, slow.url, ["annotation.created"]);
    await webhook(h, fast.url, ["annotation.created"]);
    for (let i = 0; i < 20; i++) await annotate(ann, ds);
    const started = Date.now();
    s.worker();
    // All 20 while the slow receiver has not answered even its first requests.
    await fast.waitFor((r) => r.length === 20, 5_000);
    assert.ok(Date.now() - started < 5_000);
    assert.ok(slow.received.length <= PER_WEBHOOK, "the slow one holds at most its share of sends");
  } finally {
    await s.stop();
    await slow.close();
    await fast.close();
  }
});

Deno.test("deliveries come in keyset pages; a redeliver while the event is being sent is 409", async () => {
  const s = await setup();
  // The receiver holds each event's first attempt until released: those events are being sent.
  let release = () => {};
  const held = new Promise<void>((r) => release = r);
  const receiver = startReceiver({ respond: (_r, n) => n === 1 ? held.then(() => 200) : 200 });
  try {
    const { h } = s;
    const ds = await dataset(h, 1);
    const hook = await webhook(h, receiver.url, ["annotation.created"]);
    await annotate(await h.user("annotator"), ds);
    // Five pings and the annotation's event: six attempts once delivered.
    for (let i = 0; i < 5; i++) {
      assert.equal((await h.req("POST", `/api/v1/webhooks/${hook.id}/ping`)).status, 202);
    }
    const pings = await h.req("GET", `/api/v1/webhooks/${hook.id}/deliveries`);
    assert.deepEqual(pings.body.items, [], "nothing attempted before a worker runs");
    s.worker();
    await receiver.waitFor((r) => r.length >= 1);
    const sending = receiver.received[0].id;
    const busy = await h.req("POST", `/api/v1/webhooks/${hook.id}/events/${sending}/redeliver`);
    assertError(busy, 409, "delivery_in_progress");
    release();
    await waitForAttempts(h, hook.id, 6);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { status: number; body: { items: { id: string }[]; next_cursor: string | null } } =
        await h.req(
          "GET",
          `/api/v1/webhooks/${hook.id}/deliveries?limit=4${cursor ? `&cursor=${cursor}` : ""}`,
        );
      assert.equal(res.status, 200);
      assert.ok(res.body.items.length <= 4);
      seen.push(...res.body.items.map((a) => a.id));
      cursor = res.body.next_cursor;
    } while (cursor);
    assert.equal(seen.length, 6);
    assert.equal(new Set(seen).size, 6, "no attempt twice across pages");
  } finally {
    release();
    await receiver.close();
    await s.stop();
  }
});

Deno.test("a backlog is sent whether or not the server is answering requests", async () => {
  const s = await setup();
  const receiver = startReceiver();
  try {
    const { h } = s;
    const machine = await h.user("machine");
    const ds = await dataset(h, 1);
    await webhook(h, receiver.url, ["annotation.created"]);
    const push = async (n: number) => {
      const pred = await machine.req("POST", `/api/v1/datasets/${ds}/predictions`, {
        predictions: Array.from({ length: n }, () => ({
          external_id: "x0",
          model: { name: "m", version: "1" },
          labels: ["cat"],
        })),
      });
      assert.equal(pred.body.created, n, JSON.stringify(pred.body));
    };
    // Requests always in flight: the worker keeps to its pause between claims, but never stops.
    await push(100);
    const yielding = s.worker({}, { serving: () => true });
    await receiver.waitFor((r) => r.length === 100, 20_000);
    await yielding.stop(1_000);
    // None: it claims again as its sends end.
    await push(100);
    s.worker({}, { serving: () => false });
    await receiver.waitFor((r) => r.length === 200, 20_000);
    assert.equal(new Set(receiver.received.map((r) => r.id)).size, 200);
  } finally {
    await receiver.close();
    await s.stop();
  }
});

Deno.test("two workers share the queue and never send one event twice at once", async () => {
  const s = await setup();
  const receiver = startReceiver({ respond: () => sleep(5).then(() => 200) });
  try {
    const { h } = s;
    const machine = await h.user("machine");
    const ds = await dataset(h, 1);
    await webhook(h, receiver.url, ["annotation.created"]);
    const pred = await machine.req("POST", `/api/v1/datasets/${ds}/predictions`, {
      predictions: Array.from({ length: 300 }, () => ({
        external_id: "x0",
        model: { name: "m", version: "1" },
        labels: ["cat"],
      })),
    });
    assert.equal(pred.body.created, 300, JSON.stringify(pred.body));
    s.worker();
    s.worker();
    await receiver.waitFor((r) => new Set(r.map((x) => x.id)).size === 300, 20_000);
    assert.equal(receiver.overlaps, 0);
    assert.equal(receiver.received.length, 300, "each once");
  } finally {
    await receiver.close();
    await s.stop();
  }
});

Deno.test("image.completed, dataset.completed (once, under concurrent submits), and claim.expired when a slot is taken", async () => {
  const s = await setup();
  const receiver = startReceiver();
  try {
    const { h } = s;
    const annotators = await Promise.all(Array.from({ length: 8 }, () => h.user("annotator")));
    const ds = await dataset(h, 40, 2);
    await webhook(h, receiver.url, [
      "image.completed",
      "dataset.completed",
      "claim.expired",
      "annotation.created",
    ], ds);
    s.worker();
    // Eight annotators drain the dataset at once (submits batched together).
    await Promise.all(annotators.map(async (u) => {
      while (await annotate(u, ds));
    }));
    const byType = (t: string) => receiver.received.filter((r) => r.json.type === t);
    await receiver.waitFor((r) =>
      r.filter((x) => x.json.type === "dataset.completed").length === 1 &&
      r.filter((x) => x.json.type === "image.completed").length === 40 &&
      r.filter((x) => x.json.type === "annotation.created").length === 80
    );
    const images = new Set(byType("image.completed").map((r) => r.json.data.image.id));
    assert.equal(images.size, 40);
    const done = byType("image.completed")[0].json.data;
    assert.equal(done.annotations_per_image, 2);
    assert.equal(done.annotator_ids.length, 2);
    assert.deepEqual(byType("dataset.completed")[0].json.data.dataset_id, ds);
    await sleep(200);
    assert.equal(byType("dataset.completed").length, 1, "reported once");

    // claim.expired: an annotator's claim expires, and the claim that takes its slot ends it,
    // without its holder coming back.
    const ds2 = await dataset(h, 2);
    await webhook(h, receiver.url, ["claim.expired"], ds2);
    const u = annotators[0];
    const c = await u.req("POST", `/api/v1/datasets/${ds2}/claims`);
    await setClaimExpiry(h.db, c.body.claim.id, -1000);
    const taker = await annotators[1].req("POST", `/api/v1/datasets/${ds2}/claims`);
    assert.equal(taker.body.image.id, c.body.claim.image_id);
    await receiver.waitFor((r) => r.some((x) => x.json.type === "claim.expired"));
    const expired = byType("claim.expired")[0].json.data.claim;
    assert.deepEqual(expired, {
      id: c.body.claim.id,
      dataset_id: ds2,
      image_id: c.body.claim.image_id,
      user_id: u.id,
      created_at: expired.created_at,
      expires_at: expired.expires_at,
    });
    assert.ok(Date.parse(expired.created_at) <= Date.now());
    assert.ok(Date.parse(expired.expires_at) < Date.now());
    // The holder comes back: refused, then a new claim, and the claim is not reported twice.
    const renew = await u.req("POST", `/api/v1/claims/${c.body.claim.id}/renew`);
    assert.equal(renew.status, 409);
    assert.equal(renew.body.error.code, "claim_expired");
    const again = await u.req("POST", `/api/v1/datasets/${ds2}/claims`);
    assert.equal(again.status, 201);
    await sleep(300);
    assert.equal(byType("claim.expired").length, 1);
  } finally {
    await receiver.close();
    await s.stop();
  }
});

Deno.test("a 3xx is a failed attempt: the redirect is not followed", async () => {
  const s = await setup();
  const elsewhere = startReceiver();
  const receiver = startReceiver({
    respond: () => new Response(null, { status: 302, headers: { location: elsewhere.url } }),
  });
  try {
    const { h } = s;
    const ds = await dataset(h, 1);
    const hook = await webhook(h, receiver.url, ["annotation.created"]);
    s.worker();
    await annotate(await h.user("annotator"), ds);
    await waitForAttempts(h, hook.id, 1);
    const page = await h.req("GET", `/api/v1/webhooks/${hook.id}/deliveries`);
    const [attempt] = page.body.items;
    assert.equal(attempt.status_code, 302);
    assert.equal(attempt.outcome, "retrying");
    assert.equal(elsewhere.received.length, 0, "the Location was not fetched");
  } finally {
    await receiver.close();
    await elsewhere.close();
    await s.stop();
  }
});

Deno.test("an answer's body is dropped: one without end counts by its status and frees the send", async () => {
  const s = await setup();
  let streamed = 0;
  const receiver = startReceiver({
    respond: () =>
      new Response(
        new ReadableStream({
          pull(c) {
            streamed += 16_384;
            c.enqueue(new Uint8Array(16_384));
          },
        }),
        { status: 200 },
      ),
  });
  try {
    const { h } = s;
    const ds = await dataset(h, 1);
    const hook = await webhook(h, receiver.url, ["annotation.created"]);
    s.worker({}, { timeoutMs: 5_000 });
    await annotate(await h.user("annotator"), ds);
    const [attempt] = await waitForAttempts(h, hook.id, 1);
    assert.equal(attempt.outcome, "delivered", JSON.stringify(attempt));
    assert.ok(attempt.latency_ms < 2_000, `${attempt.latency_ms} ms`);
    await sleep(200);
    const after = streamed;
    await sleep(200);
    assert.equal(streamed, after, "the connection was closed, nothing more is read");
    // ANSWER_LIMIT read, plus what the sockets' buffers took in (about 1 MiB on loopback).
    assert.ok(after < 256 * ANSWER_LIMIT, `${after} bytes streamed`);
  } finally {
    await receiver.close();
    await s.stop();
  }
});

Deno.test("an attempt ends at the send timeout even while the address check hangs", async () => {
  const s = await setup();
  try {
    const { h } = s;
    const ds = await dataset(h, 1);
    const hook = await webhook(h, "http://hangs.invalid/hook", ["annotation.created"]);
    // A resolver that never answers and ignores the abort signal: the attempt must not wait
    // for it, or the delivery's lease could run out while it is still being sent.
    const hang = () => new Promise<string[]>(() => {});
    const check = targetResolve({ allowPrivate: false, httpsOnly: false, resolve: hang });
    s.worker({}, { timeoutMs: 300, check });
    await annotate(await h.user("annotator"), ds);
    await waitForAttempts(h, hook.id, 1, 5_000);
    const page = await h.req("GET", `/api/v1/webhooks/${hook.id}/deliveries`);
    const [attempt] = page.body.items;
    assert.equal(attempt.status_code, null);
    assert.equal(attempt.outcome, "retrying");
    assert.equal(attempt.error, "the destination's address was not resolved within 0.3 s");
    assert.ok(attempt.latency_ms >= 290 && attempt.latency_ms < LEASE_SECONDS * 1000 / 10);
  } finally {
    await s.stop();
  }
});

Deno.test({
  name: "a send connects only where the guard looked: the name is not resolved again (rebinding)",
  ignore: !hasOpenssl(),
  async fn() {
    const s = await setup();
    const tls = await selfSigned(["hooks.rebind.test"]);
    const secure = startReceiver({ tls });
    const plain = startReceiver();
    const sender = createSender({ ca: [tls.cert] });
    try {
      const { h } = s;
      const ds = await dataset(h, 1);
      // `.test` names never resolve (RFC 6761): a send that looked the name up again, as fetch
      // does when it connects, could not reach anything. The guard's resolver answers 127.0.0.1
      // and this policy lets loopback stand in for a public address.
      const looked: string[] = [];
      const check = targetResolve({
        allowPrivate: false,
        httpsOnly: false,
        resolve: (host) => (looked.push(host), Promise.resolve(["127.0.0.1"])),
        blocked: () => null,
      });
      const hooks = {
        https: await webhook(h, `https://hooks.rebind.test:${secure.port}/hook`, [
          "annotation.created",
        ]),
        http: await webhook(h, `http://hooks.rebind.test:${plain.port}/hook`, [
          "annotation.created",
        ]),
        // The same server under a name its certificate does not give: TLS still checks the name.
        unnamed: await webhook(h, `https://other.rebind.test:${secure.port}/hook`, [
          "annotation.created",
        ]),
      };
      s.worker({ WEBHOOK_RETRY_SCHEDULE: "60" }, { check, sender });
      await annotate(await h.user("annotator"), ds);
      const [viaTls] = await waitForAttempts(h, hooks.https.id, 1);
      assert.equal(viaTls.outcome, "delivered", JSON.stringify(viaTls));
      assert.equal(secure.received.length, 1);
      assert.equal(secure.received[0].headers.get("host"), `hooks.rebind.test:${secure.port}`);
      verified(hooks.https.secret, secure.received[0]);
      const [viaHttp] = await waitForAttempts(h, hooks.http.id, 1);
      assert.equal(viaHttp.outcome, "delivered", JSON.stringify(viaHttp));
      assert.equal(plain.received[0].headers.get("host"), `hooks.rebind.test:${plain.port}`);
      const [refused] = await waitForAttempts(h, hooks.unnamed.id, 1);
      assert.equal(refused.outcome, "retrying");
      assert.equal(refused.status_code, null);
      assert.match(refused.error, /other\.rebind\.test/);
      assert.equal(secure.received.length, 1, "no request reached the server under that name");
      // One lookup an attempt, the guard's.
      assert.deepEqual(looked.sort(), [
        "hooks.rebind.test",
        "hooks.rebind.test",
        "other.rebind.test",
      ]);
    } finally {
      sender.close();
      await secure.close();
      await plain.close();
      await s.stop();
    }
  },
});

Deno.test("the guard refuses a private destination at send time too, without connecting", async () => {
  const s = await setup();
  const receiver = startReceiver();
  try {
    const { h } = s;
    const ann = await h.user("annotator");
    const ds = await dataset(h, 1);
    // Registered while allowed; the worker's configuration no longer allows it.
    const hook = await webhook(h, receiver.url, ["annotation.created"]);
    s.worker({ WEBHOOK_ALLOW_PRIVATE_TARGETS: "false" });
    await annotate(ann, ds);
    const [a] = await waitForAttempts(h, hook.id, 1);
    assert.equal(a.status_code, null);
    assert.match(a.error, /^refused: 127\.0\.0\.1 resolves to 127\.0\.0\.1, a loopback address/);
    assert.equal(receiver.received.length, 0);
  } finally {
    await receiver.close();
    await s.stop();
  }
});

/**
 * A documented receiver, run as its reader would run it: it verifies real deliveries, refuses
 * forged ones and does each event once (it prints `id body` for each it handles).
 */
async function documentedReceiver(code: string) {
  const dir = Deno.makeTempDirSync();
  Deno.writeTextFileSync(`${dir}/receiver.ts`, code);
  const s = await setup();
  const probe = startReceiver();
  const port = probe.port;
  await probe.close();
  const hook = await webhook(s.h, `http://127.0.0.1:${port}/`, ["annotation.created"]);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", `${dir}/receiver.ts`],
    env: { WEBHOOK_SECRET: hook.secret, PORT: String(port), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      lines.push(...chunk.split("\n").filter(Boolean));
    }
  })();
  try {
    const { h } = s;
    const ann = await h.user("annotator");
    const ds = await dataset(h, 1);
    // Until the receiver listens, deliveries are retried (0.2 s).
    s.worker({ WEBHOOK_RETRY_SCHEDULE: Array(50).fill("0.2").join(",") });
    await annotate(ann, ds);
    const deadline = Date.now() + 20_000;
    while (!lines.length && Date.now() < deadline) await sleep(50);
    assert.equal(lines.length, 1, "the event was verified and handled");
    const [id, body] = [
      lines[0].slice(0, lines[0].indexOf(" ")),
      lines[0].slice(lines[0].indexOf(" ") + 1),
    ];
    assert.equal(JSON.parse(body).type, "annotation.created");
    const delivered = async () =>
      (await h.req("GET", `/api/v1/webhooks/${hook.id}/deliveries`)).body.items
        .filter((a: { outcome: string }) => a.outcome === "delivered").length;
    const until = Date.now() + 20_000;
    // The receiver prints before it answers; until the worker records that answer the event is
    // still being sent, and a redeliver is 409.
    while (await delivered() < 1 && Date.now() < until) await sleep(50);
    assert.equal(await delivered(), 1);
    // Redelivered: verified again, handled once.
    const re = await h.req("POST", `/api/v1/webhooks/${hook.id}/events/${id}/redeliver`);
    assert.equal(re.status, 202, JSON.stringify(re.body));
    while (await delivered() < 2 && Date.now() < until) await sleep(50);
    assert.equal(await delivered(), 2);
    // Forged: refused.
    const forged = await fetch(`http://127.0.0.1:${port}/`, {
      method: "POST",
      headers: {
        "webhook-id": "evt_1",
        "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
        "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      },
      body: body,
    });
    await forged.body?.cancel();
    assert.equal(forged.status, 401);
    assert.equal(lines.length, 1);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reading;
    Deno.removeSync(dir, { recursive: true });
    await s.stop();
  }
}

Deno.test("docs/api.md's receiver (no dependency) verifies, refuses forgeries, works once", async () => {
  const doc = Deno.readTextFileSync(new URL("../docs/api.md", import.meta.url));
  await documentedReceiver(/\*\*Signatures\*\*[\s\S]*?```ts\n([\s\S]*?)```/.exec(doc)![1]);
});

Deno.test("the README's receiver (standardwebhooks) verifies, refuses forgeries, works once", async () => {
  const file = new URL("../docs/examples/webhook_receiver.ts", import.meta.url);
  assert.match(
    Deno.readTextFileSync(new URL("../README.md", import.meta.url)),
    /\(docs\/examples\/webhook_receiver\.ts\)/,
  );
  const code = Deno.readTextFileSync(file);
  // Pinned in the script (it runs outside this project) to the version the tests use.
  const { imports } = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  assert.ok(code.includes(`from "${imports.standardwebhooks}"`), imports.standardwebhooks);
  await documentedReceiver(code);
});

Deno.test("the queue gauges show what is owed and how old the oldest is", async () => {
  const s = await setup({ WEBHOOK_RETRY_SCHEDULE: "60" });
  try {
    const { h, metrics } = s;
    const ann = await h.user("annotator");
    const ds = await dataset(h, 3);
    await webhook(h, "http://127.0.0.1:9/nothing-listens", ["annotation.created"]);
    for (let i = 0; i < 3; i++) await annotate(ann, ds);
    s.worker();
    const gauge = (name: string) =>
      Number(new RegExp(`^${name} ([\\d.]+)$`, "m").exec(metrics.render())?.[1]);
    const deadline = Date.now() + 5_000;
    while (gauge("webhook_queue_depth") !== 3 && Date.now() < deadline) await sleep(50);
    assert.equal(gauge("webhook_queue_depth"), 3, "three failed once, waiting for their retry");
    await sleep(300);
    assert.ok(gauge("webhook_oldest_undelivered_seconds") > 0.2);
    assert.equal(metrics.webhookDeliveries.get({ outcome: "retrying" }), 3);
  } finally {
    await s.stop();
  }
});

Deno.test("history past WEBHOOK_RETENTION_DAYS is pruned; what is owed or recent stays", async () => {
  const s = await setup({ WEBHOOK_RETRY_SCHEDULE: "60", WEBHOOK_RETENTION_DAYS: "30" });
  const receiver = startReceiver({ respond: () => 200 });
  try {
    const { h } = s;
    const ann = await h.user("annotator");
    const ds = await dataset(h, 3);
    const hook = await webhook(h, receiver.url, ["annotation.created"], ds);
    const down = await webhook(h, "http://127.0.0.1:9/nothing-listens", ["annotation.created"], ds);
    const first = s.worker();
    for (let i = 0; i < 3; i++) await annotate(ann, ds);
    await waitForAttempts(h, hook.id, 3);
    await waitForAttempts(h, down.id, 3);
    await first.stop(0);
    // Two events and their attempts made 31 days ago; the receiver that is down still owes all
    // three (each waits 60 s for its retry), and one of them is 40 days old.
    const events = receiver.received.map((r) => r.id).sort();
    const eventIds = events.map((e) => e.replace(/^evt_/, ""));
    assert.equal(events.length, 3);
    await rawOne(
      h.db,
      `WITH aged AS (
         UPDATE webhook_deliveries
         SET created_at = now() - make_interval(days => CASE webhook_id WHEN $2::bigint THEN 31
           ELSE 40 END)
         WHERE event_id::text = ANY ($1::text[]) AND webhook_id IN ($2::bigint, $3::bigint)
       )
       UPDATE webhook_attempts SET attempted_at = now() - interval '31 days'
       WHERE webhook_id = $2::bigint AND event_id::text = ANY ($1::text[])`,
      [eventIds.slice(0, 2), hook.id, down.id],
    );

    s.worker();
    const deadline = Date.now() + 10_000;
    const left = () =>
      rawOne<{ delivered: number; owed: number; attempts: number }>(
        h.db,
        `SELECT
           (SELECT count(*)::int FROM webhook_deliveries WHERE webhook_id = $1::bigint) AS delivered,
           (SELECT count(*)::int FROM webhook_deliveries WHERE webhook_id = $2::bigint) AS owed,
           (SELECT count(*)::int FROM webhook_attempts WHERE webhook_id = $1::bigint) AS attempts`,
        [hook.id, down.id],
      );
    while ((await left())!.delivered !== 1 && Date.now() < deadline) await sleep(50);
    assert.deepEqual(await left(), { delivered: 1, owed: 3, attempts: 1 });

    const gone = await h.req("POST", `/api/v1/webhooks/${hook.id}/events/${events[0]}/redeliver`);
    assertError(gone, 404, "not_found");
    const kept = await h.req("POST", `/api/v1/webhooks/${hook.id}/events/${events[2]}/redeliver`);
    assert.equal(kept.status, 202, JSON.stringify(kept.body));
    const log = await h.req("GET", `/api/v1/webhooks/${hook.id}/deliveries`);
    assert.deepEqual(log.body.items.map((a: { event_id: string }) => a.event_id), [events[2]]);
  } finally {
    await receiver.close();
    await s.stop();
  }
});

Deno.test("claims start at each webhook's latest due time; an older due event waits for a full scan", async () => {
  const s = await setup();
  const receiver = startReceiver({ respond: () => 200 });
  try {
    const { h } = s;
    const ann = await h.user("annotator");
    const ds = await dataset(h, 4);
    const hook = await webhook(h, receiver.url, ["annotation.created"], ds);
    /** An event written by a transaction that began a minute ago: its id. */
    const lateEvent = async () =>
      (await rawOne<{ id: string }>(
        h.db,
        `INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data, created_at,
           next_attempt_at)
         VALUES ($1::bigint, nextval('webhook_event_ids'), 'annotation.created', '{}',
           now() - interval '1 minute', now() - interval '1 minute')
         RETURNING 'evt_' || event_id AS id`,
        [hook.id],
      ))!.id;

    // A worker that scans from the head only at its start: once it has claimed an event, one due
    // before it (less the margin) is not found.
    const first = s.worker({}, { fullScanMs: 600_000 });
    await annotate(ann, ds);
    await receiver.waitFor((r) => r.length === 1);
    const late = await lateEvent();
    await annotate(ann, ds);
    await receiver.waitFor((r) => r.length === 2);
    await sleep(300);
    assert.equal(receiver.received.length, 2, "the older event was claimed without a full scan");
    await first.stop(0);

    // The next worker's first claim scans from the head.
    const second = s.worker({}, { fullScanMs: 600_000 });
    await receiver.waitFor((r) => r.length === 3);
    assert.equal(receiver.received[2].id, late);
    await second.stop(0);

    // And a worker scans from the head again every fullScanMs.
    s.worker({}, { fullScanMs: 300 });
    await annotate(ann, ds);
    await receiver.waitFor((r) => r.length === 4);
    const later = await lateEvent();
    await receiver.waitFor((r) => r.length === 5);
    assert.equal(receiver.received[4].id, later);
  } finally {
    await receiver.close();
    await s.stop();
  }
});
