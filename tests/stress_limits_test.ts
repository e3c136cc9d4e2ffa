/** The judgements of the resource-limits scenario (stress/scenarios/limits.ts). */
import assert from "node:assert/strict";
import { judgeMemory, MEMORY_LIMIT_MIB, unexpectedErrors } from "../stress/scenarios/limits.ts";

Deno.test("memory over the bound, or a dead server, is a violation", () => {
  assert.deepEqual(judgeMemory(MEMORY_LIMIT_MIB, undefined), []);
  assert.match(judgeMemory(MEMORY_LIMIT_MIB + 1, undefined).join(), /RSS peaked at \d+ MiB, over/);
  assert.match(judgeMemory(120, 137).join(), /died during the scenario \(exit code 137\)/);
  assert.equal(judgeMemory(MEMORY_LIMIT_MIB + 1, 1).length, 2);
  // Accepted bodies sent at once: the same bound holds through them (lib/http/app.ts's budget).
  const phase = (peakMiB: number) => ({ beforeMiB: 130, peakMiB, sentMiB: 360 });
  assert.deepEqual(judgeMemory(200, undefined, phase(MEMORY_LIMIT_MIB)), []);
  assert.match(
    judgeMemory(200, undefined, phase(MEMORY_LIMIT_MIB + 1)).join(),
    /360 MiB of bodies sent at once took the RSS from 130 to \d+ MiB, over the 400 MiB bound/,
  );
});

Deno.test("expected timeouts are filtered out before the first errors are picked", () => {
  const timeout = (i: number) => ({
    level: "error",
    msg: "request failed",
    error: `ApiError: the request took longer than 5000 ms (${i})`,
  });
  const warned = { level: "error", msg: "request failed", code: "timeout", error: "x" };
  const bug = { level: "error", msg: "request failed", error: "TypeError: boom" };
  const errors = [...Array.from({ length: 8 }, (_, i) => timeout(i)), warned, bug];
  assert.deepEqual(unexpectedErrors(errors).slice(0, 5), [bug]);
});
