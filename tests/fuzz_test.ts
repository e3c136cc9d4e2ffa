/**
 * The fast part of the spec-driven fuzzer (testkit/fuzz.ts): requests generated from
 * /api/openapi.json for every operation, broken on purpose, sent through the app. No 5xx, the
 * error shape on every 4xx, and no change to the database from any rejected request.
 * `deno task stress` runs the same generator against a real server with many more requests.
 */
import assert from "node:assert/strict";
import { buildWorld, DIGEST_SQL, fuzz, operations, type Spec } from "../testkit/fuzz.ts";
import { createTestApp, inProcessSend } from "./harness.ts";

const RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? 1200);
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20261125);

Deno.test("fuzzing every operation of the spec with bad input", async () => {
  const h = await createTestApp({ config: { BODY_LIMIT_BYTES: String(4 * 1024 * 1024) } });
  try {
    const send = inProcessSend(h);
    const spec = (await h.anon("GET", "/api/openapi.json")).body as Spec;
    const world = await buildWorld(send, h.admin.token, "fuzz");
    const report = await fuzz({
      spec,
      world,
      send,
      runs: RUNS,
      seed: SEED,
      digest: async () => (await h.db.unsafe(DIGEST_SQL))[0].digest,
    });
    console.log(
      `${report.requests} requests, by status ${JSON.stringify(report.byStatus)}; ` +
        `statuses missing from the spec: ${[...report.undocumented].join(", ") || "none"}`,
    );
    const ops = operations(spec).map((o) => o.op.operationId);
    const missed = ops.filter((id) => !report.byOperation[id]);
    assert.deepEqual(missed, [], "every operation was fuzzed");
    assert.equal(
      report.violations.length,
      0,
      `${report.violations.length} violations (seed ${SEED}):\n` +
        report.violations.slice(0, 15).map((v) =>
          `- ${v.operationId} [${v.mutation}] ${v.problem}\n    ${v.request}\n    -> ${v.response}`
        ).join("\n"),
    );
    assert.equal(report.requests, RUNS);
  } finally {
    await h.close();
  }
});
