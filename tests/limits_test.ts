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
  await sleep(50 + 3 * DEADLINE_TICK_MS);
  assert.deepEqual(fired, ["a"]);
  assert.ok(firedAt >= 50 && firedAt < 50 + 3 * DEADLINE_TICK_MS, `fired after ${firedAt} ms`);
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
