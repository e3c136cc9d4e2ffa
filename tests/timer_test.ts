/** lib/runtime/timer.ts: the batcher's precise timeouts. */
import assert from "node:assert/strict";
import { after } from "../lib/runtime/timer.ts";

const elapsed = (ms: number) =>
  new Promise<number>((resolve) => {
    const t0 = performance.now();
    after(ms, () => resolve(performance.now() - t0));
  });

Deno.test("after: never fires before its delay", async () => {
  for (const ms of [0, 0.5, 1, 2, 5]) {
    const took = await elapsed(ms);
    assert.ok(took >= ms, `after(${ms}) fired after ${took} ms`);
  }
});

Deno.test("after: waits at once fire in the order of their deadlines", async () => {
  const fired: number[] = [];
  const delays = [9, 1, 5, 3, 7, 0, 8, 2, 6, 4];
  await Promise.all(
    delays.map((ms) => new Promise<void>((r) => after(ms * 2, () => (fired.push(ms), r())))),
  );
  assert.deepEqual(fired, [...delays].sort((a, b) => a - b));
});

Deno.test("after: a cancelled wait never fires, and its slot serves the next", async () => {
  let cancelledRan = false;
  const cancels = Array.from({ length: 10 }, () => after(3, () => cancelledRan = true));
  for (const cancel of cancels) cancel();
  // Cancelling twice, or after the slot was reused, cancels nothing else.
  const kept = elapsed(5);
  for (const cancel of cancels) cancel();
  assert.ok(await kept >= 5);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(cancelledRan, false);
});

Deno.test("after: more waits than slots all fire (setTimeout stands in)", async () => {
  const took = await Promise.all(Array.from({ length: 200 }, (_, i) => elapsed(i % 4)));
  took.forEach((t, i) => assert.ok(t >= i % 4, `wait ${i} fired after ${t} ms`));
});

Deno.test("after: a pending wait keeps the process alive, and none once it has fired", async () => {
  const code = `import { after } from ${
    JSON.stringify(import.meta.resolve("../lib/runtime/timer.ts"))
  };
after(1, () => console.log("fired"));
after(200, () => console.log("later"));
const cancel = after(60000, () => console.log("never"));
cancel();`;
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout), "fired\nlater\n");
  assert.ok(performance.now() - t0 < 30_000);
});
