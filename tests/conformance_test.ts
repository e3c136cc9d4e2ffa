/**
 * The server against its own OpenAPI document, as a client's tools read it: requests generated
 * from /api/openapi.json by json-schema-faker and judged by Ajv (testkit/conformance.ts), sent
 * over HTTP to the server started as production starts it. `deno task spec:lint` lints the same
 * document with Redocly.
 */
import assert from "node:assert/strict";
import { adminToken } from "../testkit/api.ts";
import { checkConformance } from "../testkit/conformance.ts";
import { buildWorld, type Send, type Spec } from "../testkit/fuzz.ts";
import { dbEnv, productionEnv, startServer } from "../testkit/process.ts";
import { createTestDb } from "./harness.ts";

const PER_OPERATION = Number(Deno.env.get("CONFORMANCE_RUNS") ?? 25);
const SEED = Number(Deno.env.get("CONFORMANCE_SEED") ?? 20261207);

Deno.test("every operation accepts what the OpenAPI document says is valid, and answers as it declares", async () => {
  const tdb = await createTestDb(4);
  const server = await startServer({ ...productionEnv(), ...dbEnv(tdb.url) });
  try {
    const send: Send = async (req) => {
      const res = await fetch(server.url + req.url, {
        method: req.method,
        headers: req.headers,
        body: req.body as BodyInit | undefined,
        redirect: "manual",
      });
      return { status: res.status, headers: res.headers, text: await res.text() };
    };
    const spec = await (await fetch(`${server.url}/api/openapi.json`)).json() as Spec;
    const world = await buildWorld(send, await adminToken(server), "conformance");
    const started = performance.now();
    const report = await checkConformance({
      spec,
      base: server.url,
      world,
      perOperation: PER_OPERATION,
      edgesPerOperation: PER_OPERATION * 2,
      seed: SEED,
    });
    const sum = (counts: Record<string, number>) =>
      Object.values(counts).reduce((a, b) => a + b, 0);
    const valid = sum(report.valid);
    console.log(
      `${valid} valid requests, ${sum(report.edgesValid)} valid and ` +
        `${sum(report.edgesInvalid)} invalid edge cases in ` +
        `${Math.round(performance.now() - started)} ms; answers to valid ones by status ` +
        `${JSON.stringify(report.byStatus)}; ${report.generatorMisses} generated values refused ` +
        "by Ajv and not sent",
    );
    assert.deepEqual(
      report.disagreements.slice(0, 10),
      [],
      `${report.disagreements.length} disagreements (seed ${SEED})`,
    );
    // Every operation got valid requests, and most of them: a generator that cannot satisfy
    // the document would otherwise pass this test by sending nothing.
    const ops = Object.values(spec.paths).flatMap((methods) =>
      Object.values(methods).map((op) => op.operationId)
    );
    for (const id of ops) {
      assert.ok(
        (report.valid[id] ?? 0) >= PER_OPERATION * 0.8,
        `${id}: ${report.valid[id] ?? 0} valid requests of ${PER_OPERATION}`,
      );
    }
    // Some requests got through (the world's ids and labels are used), so the answers' schemas
    // were checked on successes too, not only on errors.
    const successes = Object.entries(report.byStatus)
      .filter(([status]) => status.startsWith("2"))
      .reduce((a, [, n]) => a + n, 0);
    assert.ok(successes >= valid / 3, `only ${successes} of ${valid} valid requests succeeded`);
  } finally {
    server.kill("SIGTERM");
    await server.exited;
    await tdb.close();
  }
});
