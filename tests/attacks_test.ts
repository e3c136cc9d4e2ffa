/**
 * Attacks not covered by the other test files (testkit/attacks.ts lists what is covered where):
 * token tricks, ids of other datasets, and SQL injection strings in every parameter of the spec.
 * `deno task stress` runs the same battery against a real server process.
 */
import assert from "node:assert/strict";
import { injectEverywhere, runAttacks } from "../testkit/attacks.ts";
import type { Spec } from "../testkit/fuzz.ts";
import { attackSetup, withApp } from "./harness.ts";

withApp("attacks: tokens, headers and ids of other datasets", async (h) => {
  const setup = attackSetup(h);
  const outcomes = await runAttacks(setup);
  const failed = outcomes.filter((o) => !o.ok);
  assert.deepEqual(
    failed.map((o) => `${o.attack}: ${o.detail}`),
    [],
  );
  assert.ok(outcomes.length >= 25, `${outcomes.length} attacks`);
});

withApp("attacks: SQL injection strings in every parameter of every operation", async (h) => {
  const setup = attackSetup(h);
  const spec = (await h.anon("GET", "/api/openapi.json")).body as Spec;
  const ds = await h.req("POST", "/api/v1/datasets", { name: "sqli", labels: ["cat"] });
  const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
    images: [{ uri: "s3://b/sqli.jpg", external_id: "e" }],
  });
  const report = await injectEverywhere(setup, spec, {
    dataset: ds.body.id,
    image: reg.body.images[0].id,
  });
  assert.deepEqual(report.failures, []);
  assert.ok(report.requests > 300, `${report.requests} requests`);
  const [tables] = await h.db.unsafe(
    `SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`,
  );
  assert.ok(tables.n >= 5, "every table is still there");
});
