/**
 * Bad input from the spec against a real server: testkit/fuzz.ts's generator, ≥ 5,000
 * requests one at a time, the database digested before and after each.
 */
import {
  buildWorld,
  DIGEST_SQL,
  fuzz,
  operations,
  type Send,
  type Spec,
} from "../../testkit/fuzz.ts";
import { adminToken } from "../../testkit/api.ts";
import { type Ctx, fmt, type Result, type Scenario, sqlFor } from "../lib/scenario.ts";
import { killHard, startLoadServer } from "../../testkit/process.ts";

export const fuzzScenario: Scenario = {
  name: "fuzz",
  async run(ctx: Ctx): Promise<Result> {
    const url = await ctx.database("fuzz");
    const server = await startLoadServer({
      databaseUrl: url,
      env: { BODY_LIMIT_BYTES: String(4 * 1024 * 1024) },
    });
    const sql = sqlFor(url);
    try {
      const send: Send = async (req) => {
        try {
          const res = await fetch(server.url + req.url, {
            method: req.method,
            headers: req.headers,
            body: req.body as BodyInit | undefined,
            signal: AbortSignal.timeout(15_000),
          });
          return { status: res.status, headers: res.headers, text: await res.text() };
        } catch (e) {
          return { status: 0, headers: new Headers(), text: String(e) };
        }
      };
      const spec = (await (await fetch(`${server.url}/api/openapi.json`)).json()) as Spec;
      const world = await buildWorld(send, await adminToken(server.url), "fuzz");
      const runs = ctx.quick ? 1000 : 6000;
      const seed = Number(Deno.env.get("FUZZ_SEED") ?? Date.now() % 1_000_000);
      const report = await fuzz({
        spec,
        world,
        send,
        runs,
        seed,
        digest: async () => (await sql.unsafe(DIGEST_SQL))[0].digest,
        progress: (n) => ctx.log(`  ${fmt(n)} requests`),
      });
      const ops = operations(spec).map((o) => o.op.operationId);
      const missed = ops.filter((id) => !report.byOperation[id]);
      const violations = report.violations.map((v) =>
        `${v.operationId} [${v.mutation}]: ${v.problem}\n      ${v.request}\n      -> ${v.response}`
      );
      if (missed.length) violations.push(`operations never fuzzed: ${missed.join(", ")}`);
      if (server.logs("error").length) {
        violations.push(
          ...server.logs("error").slice(0, 5).map((e) =>
            `server logged: ${JSON.stringify(e).slice(0, 300)}`
          ),
        );
      }
      return {
        test: "4. bad input from the spec",
        load: `${
          fmt(report.requests)
        } generated requests over ${ops.length} operations (seed ${seed})`,
        faults:
          "wrong types, missing/extra fields, NaN/1e999, NUL/unicode, bad JSON and content types, bad and foreign ids, SQLi",
        violations,
        notes: [
          `answers by status: ${JSON.stringify(report.byStatus)}`,
          `statuses answered but not in the spec: ${[...report.undocumented].join(", ") || "none"}`,
          `rerun with FUZZ_SEED=${seed} deno task stress --only=fuzz`,
        ],
      };
    } finally {
      await sql.end();
      await killHard(server);
    }
  },
};
