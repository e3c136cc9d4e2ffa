/**
 * Auth attacks against a real server in production mode that also trusts an identity provider
 * (a JWKS served from this process): the whole battery of testkit/attacks.ts (alg none,
 * forged and tampered tokens, expiry and nbf, wrong iss/aud, HS/RS confusion against the
 * provider's key, disabled users, role escalation, other annotators' claims, ids of other
 * datasets) and SQL injection strings in every parameter of the spec.
 */
import { exportJWK, generateKeyPair } from "jose";
import { freePort } from "../../lib/runtime/embedded_pg.ts";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "../../lib/auth/tokens.ts";
import {
  type AttackSetup,
  DIGEST_SQL,
  type IdpSetup,
  injectEverywhere,
  runAttacks,
} from "../../testkit/attacks.ts";
import type { Send, Spec } from "../../testkit/fuzz.ts";
import { adminToken, call } from "../../testkit/api.ts";
import { type Ctx, fmt, type Result, type Scenario, seedDataset, sqlFor } from "../lib/scenario.ts";
import { killHard, SERVER_JWT_SECRET, startLoadServer } from "../../testkit/process.ts";

export const authScenario: Scenario = {
  name: "auth",
  async run(ctx: Ctx): Promise<Result> {
    const url = await ctx.database("auth");
    // The identity provider: one RS256 key, its JWKS served here.
    const rsa = await generateKeyPair("RS256", { extractable: true });
    const publicJwk = { ...(await exportJWK(rsa.publicKey)), kid: "stress-k1", alg: "RS256" };
    const jwksPort = freePort();
    const jwks = Deno.serve(
      { hostname: "127.0.0.1", port: jwksPort, onListen: () => {} },
      () => Response.json({ keys: [{ ...publicJwk, use: "sig" }] }),
    );
    const idp: IdpSetup = {
      issuer: "https://idp.stress.test/",
      audience: "annotation-stress",
      roleClaim: "role",
      kid: "stress-k1",
      privateKey: rsa.privateKey,
      publicJwk: { ...publicJwk, use: "sig" },
    };
    const server = await startLoadServer({
      databaseUrl: url,
      env: {
        AUTH_JWKS_URL: `http://127.0.0.1:${jwksPort}/jwks.json`,
        AUTH_ISSUER: idp.issuer,
        AUTH_AUDIENCE: idp.audience,
        AUTH_ROLE_CLAIM: idp.roleClaim,
      },
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
      const admin = await adminToken(server.url);
      const setup: AttackSetup = {
        send,
        jwtSecret: SERVER_JWT_SECRET,
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        adminToken: admin,
        digest: async () => (await sql.unsafe(DIGEST_SQL))[0].digest,
        idp,
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
      for (const e of server.logs("error").slice(0, 5)) {
        violations.push(`server logged: ${JSON.stringify(e).slice(0, 300)}`);
      }
      return {
        test: "5. auth attacks",
        load:
          `${outcomes.length} token, identity-provider, role, claim and cross-dataset attacks; ` +
          `${fmt(injection.requests)} SQL injection requests`,
        faults: "forged, expired, foreign and confused tokens, disabled users, escalation, " +
          "others' claims and ids, SQLi in every parameter",
        violations,
        notes: [
          `refused as expected: ${outcomes.filter((o) => o.ok).length} of ${outcomes.length}`,
        ],
      };
    } finally {
      await sql.end();
      await killHard(server);
      await jwks.shutdown();
    }
  },
};
