/** lib/http/limits.ts: the request deadlines' timer and the large-body budget. */
import assert from "node:assert/strict";
import { ByteBudget, DEADLINE_TICK_MS, Deadlines } from "../lib/http/limits.ts";

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
