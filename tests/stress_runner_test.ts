/** `deno task stress` fails a run that took longer than issue 7's 10 minutes. */
import assert from "node:assert/strict";
import { TIME_LIMIT_S, verdict } from "../stress/run.ts";

Deno.test("the stress run's exit code: violations and the time bound", () => {
  const clean = [{ violations: [] }, { violations: [] }];
  assert.equal(TIME_LIMIT_S.full, 600);
  assert.deepEqual(verdict(clean, 599, false), {
    code: 0,
    lines: ["all invariants held — 599 s in all"],
  });
  const late = verdict(clean, 601, false);
  assert.equal(late.code, 1, "a full run over 600 s fails");
  assert.match(late.lines.at(-1)!, /^FAILED: the full run took 601 s, over its 600 s bound$/);
  assert.equal(verdict(clean, TIME_LIMIT_S.quick + 1, true).code, 1, "the quick bound too");
  assert.equal(verdict(clean, TIME_LIMIT_S.quick - 1, true).code, 0);
  const broken = verdict([{ violations: ["x"] }, { violations: ["y", "z"] }], 10, false);
  assert.equal(broken.code, 1);
  assert.equal(broken.lines[0], "3 violation(s) — 10 s in all");
});
