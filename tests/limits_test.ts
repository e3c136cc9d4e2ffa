/** lib/http/limits.ts: the request deadlines' timer and the large-body budget; BodyBudget's turns. */
import assert from "node:assert/strict";
import type { Context } from "hono";
import { ApiError } from "../lib/http/errors.ts";
import { ByteBudget, DEADLINE_TICK_MS, Deadlines, LARGE_BODY_BYTES } from "../lib/http/limits.ts";
import { BodyBudget } from "../lib/http/middleware.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("deadlines fire once, about on time, unless forgotten first", async () => {
  const deadlines = new Deadlines();
  const fired: string[] = [];
  const started = performance.now();
  let firedAt = 0;
  deadlines.add(50, () => {
    fired.push("a");
    firedAt = performance.now() - started;
  });
  const forget = deadlines.add(50, () => fired.push("b"));
  forget();
  // "On time" against a plain 50 ms timer started alongside: on a loaded machine every timer is
  // late, and the deadlines' own lateness is at most their tick on top of that.
  let plainAt = 0;
  setTimeout(() => plainAt = performance.now() - started, 50);
  while (!fired.length || !plainAt) {
    assert.ok(performance.now() - started < 5_000, "a deadline never fired");
    await sleep(5);
  }
  await sleep(3 * DEADLINE_TICK_MS);
  assert.deepEqual(fired, ["a"]);
  assert.ok(firedAt >= 50, `fired early, after ${firedAt} ms`);
  assert.ok(
    firedAt < plainAt + 3 * DEADLINE_TICK_MS,
    `fired after ${firedAt} ms, a plain timer after ${plainAt} ms`,
  );
});

Deno.test("the body budget admits in order, within its total, and gives up after the wait", async () => {
  const budget = new ByteBudget(100);
  const a = await budget.take(60, 1000);
  assert.ok(a);
  const order: string[] = [];
  const b = budget.take(60, 1000).then((r) => (order.push("b"), r));
  const c = budget.take(30, 1000).then((r) => (order.push("c"), r));
  await sleep(20);
  assert.deepEqual(order, [], "b waits for room; c waits behind b (first come, first served)");
  a();
  const [rb, rc] = await Promise.all([b, c]);
  assert.deepEqual(order, ["b", "c"]);
  assert.ok(rb && rc);
  assert.equal(await budget.take(20, 30), null, "no room within the wait: null");
  rb();
  rc();
  const d = await budget.take(100, 10);
  assert.ok(d, "all of it back");
  d();
});

Deno.test("large bodies are handled one at a time, in arrival order; small ones never wait", async () => {
  const MiB = 1024 * 1024;
  const budget = new BodyBudget(200);
  const request = (method: string, bytes: number) =>
    ({
      req: {
        method,
        raw: new Request("http://x/", {
          method,
          headers: { "content-length": String(bytes) },
          body: method === "GET" ? undefined : "x",
        }),
      },
    }) as unknown as Context;
  const events: string[] = [];
  // A handler that holds its turn until told to finish.
  const held = (name: string) => {
    let finish = () => {};
    const done = new Promise<void>((r) => finish = r);
    const admitted = budget.admit(request("POST", 2 * MiB), async () => {
      events.push(`${name} in`);
      await done;
      events.push(`${name} out`);
    });
    return { finish, admitted };
  };
  const a = held("a");
  const b = held("b");
  const c = held("c");
  await sleep(20);
  // Two 2 MiB bodies fit in BODY_LIMIT_BYTES many times over: only one is handled.
  assert.deepEqual(events, ["a in"]);
  await budget.admit(request("POST", LARGE_BODY_BYTES), () => {
    events.push("small");
    return Promise.resolve();
  });
  await budget.admit(request("GET", 0), () => {
    events.push("get");
    return Promise.resolve();
  });
  assert.deepEqual(events, ["a in", "small", "get"], "small bodies and reads pass");
  a.finish();
  await a.admitted;
  await sleep(10);
  assert.deepEqual(events.slice(3), ["a out", "b in"], "b next, c still waiting");
  b.finish();
  c.finish();
  await Promise.all([b.admitted, c.admitted]);
  assert.deepEqual(events.slice(5), ["b out", "c in", "c out"]);

  // Past the wait (the request's deadline), 503 busy.
  const d = held("d");
  await sleep(10);
  await assert.rejects(
    budget.admit(request("POST", 300 * 1024), () => {
      events.push("e in");
      return Promise.resolve();
    }),
    (e) => e instanceof ApiError && e.status === 503 && e.code === "busy",
  );
  d.finish();
  await d.admitted;
  assert.ok(!events.includes("e in"));
});
