/**
 * The bookkeeping of the no-double-claims scenario (stress/scenarios/claims.ts), which must not
 * end early and must say so when it tested less than it promises.
 */
import assert from "node:assert/strict";
import { claimSlots, DrainTracker, LOAD, shortfall } from "../stress/scenarios/claims.ts";

Deno.test("a dataset's 204s never end the other dataset", () => {
  const t = new DrainTracker(4);
  for (let i = 0; i < 5; i++) t.empty("k1");
  assert.deepEqual(t.open(["k1", "k3"]), ["k3"], "k1 ran dry after 5 empties in a row");
  for (let i = 0; i < 4; i++) t.empty("k3");
  assert.deepEqual(t.open(["k1", "k3"]), ["k3"], "4 empties in k3 are within the tolerance");
  assert.equal(t.total, 9);
});

Deno.test("transient 204s scattered over a long run never end a dataset", () => {
  const t = new DrainTracker(4);
  for (let i = 0; i < 10_000; i++) {
    t.empty("k1");
    t.empty("k1");
    t.empty("k1");
    t.claimed("k1");
  }
  assert.deepEqual(t.open(["k1"]), ["k1"], "30,000 empties, never more than 3 in a row");
});

Deno.test("the seeded slots leave room over the claim target", () => {
  // A completed claim takes a slot for good; about 80 % complete. Even if every claim
  // completed, the datasets must not run dry before the target.
  for (const [name, load] of Object.entries(LOAD)) {
    assert.ok(
      claimSlots(load) >= load.target * 1.25,
      `${name}: ${claimSlots(load)} slots for ${load.target} claims`,
    );
  }
  assert.ok(LOAD.full.target >= 20_000 && LOAD.full.annotators >= 64, "issue 7's load");
});

Deno.test("fewer claims than the target is a violation", () => {
  assert.equal(shortfall(20_000, 20_000, 0), null);
  assert.equal(shortfall(20_000, 20_413, 1), null);
  assert.match(shortfall(20_000, 19_999, 2)!, /only 19,999 claims .* target of 20,000/);
});
