/**
 * Auth attacks against a real server in production mode: the battery of stress/lib/attacks.ts
 * (token tricks, ids of other datasets) and SQL injection strings in every parameter of the spec.
 * The attacks already tested in tests/ (alg none, forged signatures, expiry, iss/aud, HS/RS
 * confusion, disabled users, the role matrix, claims of others) are listed in that file.
 */
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "../../lib/auth.ts";
import { type AttackSetup, DIGEST_SQL, injectEverywhere, runAttacks } from "../lib/attacks.ts";
import type { Send, Spec } from "../lib/fuzz.ts";
import { adminToken, call } from "../lib/http.ts";
import { type Ctx, fmt, type Result, type Scenario, seedDataset, sqlFor } from "../lib/scenario.ts";
import { JWT_SECRET, killHard, startServer } from "../lib/server.ts";

export const authScenario: Scenario = {
  name: "auth",
  async run(ctx: Ctx): Promise<Result> {
    const url = await ctx.database("auth");
    const server = await startServer({ databaseUrl: url });
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
      const admin = await adminToken(server.url);
      const setup: AttackSetup = {
        send,
        jwtSecret: JWT_SECRET,
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        adminToken: admin,
        digest: async () => (await sql.unsafe(DIGEST_SQL))[0].digest,
      };
      const outcomes = await runAttacks(setup);
      const spec = (await call(server.url, null, "GET", "/api/openapi.json")).body as Spec;
      const ds = await seedDataset(server.url, admin, { name: "auth", count: 3 });
      const injection = await injectEverywhere(setup, spec, {
        dataset: ds.id,
        image: ds.images[0],
      });
      const violations = [
        ...outcomes.filter((o) => !o.ok).map((o) => `${o.attack.trim()}: ${o.detail}`),
        ...injection.failures,
      ];
      for (const e of server.errors().slice(0, 5)) {
        violations.push(`server logged: ${JSON.stringify(e).slice(0, 300)}`);
      }
      return {
        test: "5. auth attacks",
        load: `${outcomes.length} token, header and cross-dataset attacks; ` +
          `${fmt(injection.requests)} SQL injection requests`,
        faults: "forged/odd tokens, foreign ids, SQLi in every parameter",
        violations,
        notes: [
          `refused as expected: ${outcomes.filter((o) => o.ok).length} of ${outcomes.length}`,
        ],
      };
    } finally {
      await sql.end();
      await killHard(server);
    }
  },
};
