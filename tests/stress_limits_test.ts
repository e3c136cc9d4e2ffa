/** The judgements of the resource-limits scenario (stress/scenarios/limits.ts). */
import assert from "node:assert/strict";
import {
  BODY_MEMORY_FACTOR,
  judgeMemory,
  MEMORY_LIMIT_MIB,
  unexpectedErrors,
} from "../stress/scenarios/limits.ts";

Deno.test("memory over the bound, or a dead server, is a violation", () => {
  assert.deepEqual(judgeMemory(MEMORY_LIMIT_MIB, undefined), []);
  assert.match(judgeMemory(MEMORY_LIMIT_MIB + 1, undefined).join(), /RSS peaked at \d+ MiB, over/);
  assert.match(judgeMemory(120, 137).join(), /died during the scenario \(exit code 137\)/);
  assert.equal(judgeMemory(MEMORY_LIMIT_MIB + 1, 1).length, 2);
  // Accepted bodies parsed at once: bounded by their size, on top of the RSS before them.
  const sent = 120;
  assert.deepEqual(
    judgeMemory(200, undefined, {
      beforeMiB: 130,
      peakMiB: 130 + BODY_MEMORY_FACTOR * sent,
      sentMiB: sent,
    }),
    [],
  );
  assert.match(
    judgeMemory(200, undefined, {
      beforeMiB: 130,
      peakMiB: 131 + BODY_MEMORY_FACTOR * sent,
      sentMiB: sent,
    })
      .join(),
    /120 MiB of bodies parsed at once took the RSS from 130 to \d+ MiB, over 4 times/,
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
